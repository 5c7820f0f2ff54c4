"""End to end: a short real RATIO run goes through import and texgen, and the macros the
paper prints equal the numbers in the run's own metrics.jsonl, at print precision.

The run trains two steps for a few iterations, in this process, from a
clean git checkout made for the test (the importer refuses a run whose
commit is unknown or whose tree is modified).
"""

import subprocess

from experiments.gpt2_common import main
from experiments.gpt2_ratio_ablation import RATIO
from experiments.results import read_jsonl
from paper import import_results
from paper.render import figures, texgen
from paper.render.testdata import macros_of

STEPS = ("step00", "step02")
ITERS = 4


def clean_checkout(path):
    path.mkdir()
    git = ["git", "-C", str(path), "-c", "user.name=knlp", "-c", "user.email=knlp@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    (path / "README").write_text("a checkout for paper/e2e_test.py\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "test"], check=True)
    return path


def test_a_short_run_reaches_the_papers_macros(tmp_path, monkeypatch):
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(clean_checkout(tmp_path / "checkout")))
    argv = ["--steps", "0,2", "--iters", str(ITERS), "--run-id", "e2e", "--no-progress"]
    assert main(RATIO, [*argv, "--results-dir", str(tmp_path / "results")]) == 0
    run = tmp_path / "results" / "gpt2_ratio_ablation" / "e2e"

    dest, copied = import_results.import_run(run, tmp_path / "data")
    assert copied == ["manifest.json", "summary.json", "val_curves.csv"]
    files = sorted(str(p) for p in dest.iterdir())
    macros_text, table = texgen.render_set(dest.name, files)
    m = macros_of(macros_text)

    assert m["RatioRunId"] == "\\texttt{e2e}" and m["RatioIters"] == str(ITERS)
    assert m["RatioStepCount"] == "2" and m["RatioSeeds"] == "1 seed"
    for i, step in enumerate(STEPS, start=1):
        evals = [
            r
            for r in read_jsonl(str(run / "steps" / step / "metrics.jsonl"))
            if r["kind"] == "eval"
        ]
        final = f"{evals[-1]['val_loss']:.3f}"
        key = f"RatioStep{texgen.roman(i)}"
        assert m[key + "Name"] == step
        assert m[key + "Mean"] == final, (step, m[key + "Mean"], final)
        assert m[key + "Std"] == "---" and m[key + "Runs"] == "1/1"
        assert f" & {final} & " in table
    assert m["RatioStepIIVs"] == "not resolved"  # one seed never resolves
    assert figures.main([dest.name, "--out", str(tmp_path / "ratio.pdf"), *files]) == 0
