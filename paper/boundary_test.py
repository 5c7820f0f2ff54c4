"""No model, attention or pruning code lives under paper/: it prints runs, it does not make them.

Every paper/ Python file and BUILD file is scanned: none may import torch,
the model zoo, the pruning package or the kernels, nor depend on them in
Bazel. Running a target (the end-to-end test trains through
experiments.gpt2_common) is allowed; re-implementing one is not.
"""

import re
from pathlib import Path

PAPER = Path("paper")
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
