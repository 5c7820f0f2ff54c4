"""No model, attention or pruning code lives under paper/: it prints runs, it does not make them.

Every paper/ Python file and BUILD file is scanned: none may import torch,
the model zoo, the pruning package or the kernels, nor depend on them in
Bazel. And the transitive Bazel dependencies of the paper's targets
(//paper:torch_free_deps, a genquery of `deps(...)`) hold none of them either,
so nothing the paper builds on, its run record from experiments/ included,
pulls in torch. Consuming a built run is allowed (the end-to-end test depends
on //experiments:gate_ratio, whose runs torch trains, and is left out of the
query); re-implementing one is not.
"""

import re
from pathlib import Path

import pytest

PAPER = Path("paper")
# //paper:torch_free_deps: one label a line. A plain pytest reads bazel-bin's.
DEPS = ("paper/torch_free_deps", "bazel-bin/paper/torch_free_deps")
FORBIDDEN_LABEL = re.compile(r"^(@pip//:torch$|//models[/:]|//pruning[/:]|//kernels[/:])")
FORBIDDEN_IMPORT = re.compile(r"^\s*(?:import|from)\s+(torch|models|pruning|kernels)\b", re.M)
FORBIDDEN_DEP = re.compile(r"\"(//models|//pruning|//kernels)[/:\"]|requirement\(\"torch\"\)")


def offenders(root):
    """(file, what) for every forbidden import or Bazel dependency under `root`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        found += [(str(path), m.group(1)) for m in FORBIDDEN_IMPORT.finditer(path.read_text())]
    for path in sorted(root.rglob("BUILD.bazel")):
        found += [(str(path), m.group(0)) for m in FORBIDDEN_DEP.finditer(path.read_text())]
    return found


def test_no_model_attention_or_pruning_code_under_paper():
    scanned = {str(p) for p in PAPER.rglob("*.py")}
    assert {"paper/import_results.py", "paper/render/data.py"} <= scanned, scanned
    assert offenders(PAPER) == []


def test_the_scan_finds_an_import_and_a_dependency(tmp_path):
    (tmp_path / "gpt.py").write_text("import os\nfrom torch import nn\n")
    (tmp_path / "BUILD.bazel").write_text('py_library(deps = ["//models/gpt2:gpt2_all"])\n')
    assert offenders(tmp_path) == [
        (str(tmp_path / "gpt.py"), "torch"),
        (str(tmp_path / "BUILD.bazel"), '"//models/'),
    ]


def forbidden_labels(labels):
    """The torch, model, pruning and kernel targets among Bazel labels."""
    return [label for label in labels if FORBIDDEN_LABEL.match(label)]


def test_the_papers_transitive_deps_hold_no_torch():
    path = next((Path(p) for p in DEPS if Path(p).is_file()), None)
    if path is None:
        pytest.skip("//paper:torch_free_deps not built; run `bazel build //paper:torch_free_deps`")
    labels = path.read_text().split()
    # The query is the real closure: it reaches the run record the paper reads.
    assert {"//experiments:record", "//experiments:results", "//paper/render:data"} <= set(labels)
    assert forbidden_labels(labels) == []


def test_the_deps_check_finds_torch_and_the_models():
    labels = ["@pip//:torch", "@pip//:torchvision", "//models/gpt2:core", "//kernels:ops", "//x"]
    assert forbidden_labels(labels) == ["@pip//:torch", "//models/gpt2:core", "//kernels:ops"]
