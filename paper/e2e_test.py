"""End to end: the gate's built RATIO result goes through install, import and texgen, and
the macros the paper prints equal the numbers in the installed runs' own metrics.jsonl,
at print precision, beside each run's inputs digest.

//experiments:gate_ratio (two steps, four iterations, the cpu profile) is built
by Bazel before this test runs; its runfiles hold experiment.json, report/, the
runs and the installer, experiments/gate_ratio.install.sh. The test installs
it, as `bazel run //experiments:gate_ratio` would, into a temporary results
directory of a clean git checkout made for it (the importer refuses a run
whose commit is unknown or whose tree is modified). Nothing trains here.
With a plain pytest it uses bazel-bin's build of the target.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from experiments.results import read_jsonl
from paper import import_results
from paper.render import figures, texgen
from paper.render.testdata import macros_of

LAUNCHER = "experiments/gate_ratio.install.sh"
STEPS = ("step00", "step08")  # //experiments:gate_ratio's fixed --steps=0,8


def runfiles_root():
    """Where the launcher's relative paths hold: this test's runfiles, or bazel-bin's."""
    for root in (Path("."), Path("bazel-bin/experiments/gate_ratio.install.sh.runfiles/knlp")):
        if (root / LAUNCHER).is_file():
            return root.resolve()
    pytest.skip("//experiments:gate_ratio not built; run `bazel build //experiments:gate_ratio`")


def clean_checkout(path):
    path.mkdir()
    git = ["git", "-C", str(path), "-c", "user.name=knlp", "-c", "user.email=knlp@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    (path / "README").write_text("a checkout for paper/e2e_test.py\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "test"], check=True)
    return path


def install(tmp_path):
    """Runs the gate's installer; returns the installed run directory."""
    checkout = clean_checkout(tmp_path / "checkout")
    results = tmp_path / "results"
    env = dict(os.environ, BUILD_WORKSPACE_DIRECTORY=str(checkout))
    proc = subprocess.run(
        [f"./{LAUNCHER}", "--results-dir", str(results)],
        cwd=runfiles_root(),
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = (results / "gpt2_ratio_ablation").iterdir()
    return run


def final_eval(run_dir, run):
    evals = [
        r for r in read_jsonl(str(run_dir / "runs" / run / "metrics.jsonl")) if r["kind"] == "eval"
    ]
    return evals[-1]


def test_the_gates_run_reaches_the_papers_macros(tmp_path):
    run = install(tmp_path)
    dest, copied = import_results.import_run(run, tmp_path / "data")
    assert copied == ["manifest.json", "summary.json", "val_curves.csv"]
    files = sorted(str(p) for p in dest.iterdir())
    macros_text, table = texgen.render_set(dest.name, files)
    m = macros_of(macros_text)

    runs = [f"{step}-s1337" for step in STEPS]
    last = [final_eval(run, r) for r in runs]
    assert m["RatioRunId"] == texgen.tt(run.name)
    assert m["RatioIters"] == str(last[0]["iter"]) == str(last[1]["iter"])
    assert m["RatioStepCount"] == "2" and m["RatioSeeds"] == "1 seed"
    for i, (step, final) in enumerate(zip(STEPS, last, strict=True), start=1):
        key = f"RatioStep{texgen.roman(i)}"
        loss = f"{final['val_loss']:.3f}"
        assert m[key + "Name"] == step
        assert m[key + "Mean"] == loss, (step, m[key + "Mean"], loss)
        assert m[key + "Std"] == "---" and m[key + "Runs"] == "1/1"
        assert f" & {loss} & " in table
    assert m["RatioStepIIVs"] == "not resolved"  # one seed never resolves

    _, provenance = texgen.index([str(dest / "manifest.json")])
    for r in runs:
        result = json.loads((run / "runs" / r / "result.json").read_text())
        digest = texgen._hash(result["inputs_sha256"])
        assert f"\\newline {texgen.tt(r)} {digest}" in provenance, r
    assert figures.main([dest.name, "--out", str(tmp_path / "ratio.pdf"), *files]) == 0
