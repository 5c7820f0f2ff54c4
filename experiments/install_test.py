"""`bazel run //experiments:gate_ratio`, as the installer does it, on the gate's built runs.

The gate builds //experiments:gate_ratio (two RATIO steps, four iterations)
end to end; these tests run its launcher the way `bazel run` does, into a
clean git checkout of their own, and check what lands in
results/<experiment>/<run_id>/: the report and every run's record, a
manifest naming the commit and every run's inputs digest, numbers equal to
the runs' own records, nothing rewritten by a second installation, and the
old command-line flags refused with one line.
"""

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from experiments.record import Manifest, RunResult, Summary, missing_fields
from experiments.results import read_jsonl
from experiments.testing import gate_runfiles

LAUNCHER = "experiments/gate_ratio.install.sh"
RUNS = ("step00-s1337", "step08-s1337")


def clean_checkout(path: Path) -> Path:
    path.mkdir()
    git = ["git", "-C", str(path), "-c", "user.name=knlp", "-c", "user.email=knlp@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    (path / ".gitignore").write_text("/results/\n")
    subprocess.run([*git, "add", ".gitignore"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "test"], check=True)
    return path


def install(checkout: Path, *args) -> subprocess.CompletedProcess:
    runfiles = gate_runfiles()
    env = dict(os.environ, BUILD_WORKSPACE_DIRECTORY=str(checkout))
    env.pop("RUNFILES_DIR", None)
    return subprocess.run(
        [str(runfiles / LAUNCHER), *args],
        cwd=runfiles,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    checkout = clean_checkout(tmp_path_factory.mktemp("install") / "checkout")
    first = install(checkout)
    assert first.returncode == 0, first.stderr[-3000:]
    (run_dir,) = (checkout / "results" / "gpt2_ratio_ablation").iterdir()
    return checkout, run_dir, first


def test_the_report_and_every_runs_record_are_installed(installed):
    _, run_dir, first = installed
    for f in ("summary.md", "summary.json", "val_curves.csv", "manifest.json"):
        assert (run_dir / f).is_file(), f
    for run in RUNS:
        for f in ("result.json", "metrics.jsonl", "log.txt", "model.pt", "spec.json"):
            assert (run_dir / "runs" / run / f).is_file(), (run, f)
    # The label states the size built (the cpu profile's MLP 512), not the doc's 3072.
    assert "| step00 | B: MLP 512 (ratio 4), adamwspam |" in first.stdout
    assert "## Steps" in first.stdout
    assert first.stdout.index("research checks failed") < first.stdout.index("## Steps")


def test_the_manifest_names_the_commit_and_every_runs_inputs(installed):
    checkout, run_dir, _ = installed
    m = json.loads((run_dir / "manifest.json").read_text())
    assert missing_fields(m) == []
    Manifest.from_dict(m)
    head = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert m["git"] == {"commit": head, "dirty": False}
    assert m["command"] == (
        "bazel run //experiments:gate_ratio --profile=cpu --steps=0,8 --iters=4"
    )
    for run in RUNS:
        res = json.loads((run_dir / "runs" / run / "result.json").read_text())
        assert m["runs"][run] == res["inputs_sha256"]
    assert m["train"]["max_iters"] == 4 and m["train"]["effective_batch_tokens"] == 12 * 64
    assert m["versions"]["torch"] and m["machine"]["device"] == "cpu"
    assert f"Installed from commit `{head}`." in (run_dir / "summary.md").read_text()


def test_summary_and_curves_equal_the_runs_records(installed):
    _, run_dir, _ = installed
    s = Summary.from_dict(json.loads((run_dir / "summary.json").read_text()))
    assert s.complete and s.run_id == run_dir.name and s.reference == "step00"
    want_curves = []
    for row in s.runs:
        res = RunResult.from_dict(
            json.loads((run_dir / "runs" / row["run"] / "result.json").read_text())
        )
        assert row["final_val_loss"] == res.values["val_loss"]
        assert row["tokens_seen"] == res.values["tokens"] > 0
        assert row["params"] == res.values["params"]
        evals = [
            r
            for r in read_jsonl(str(run_dir / "runs" / row["run"] / "metrics.jsonl"))
            if r["kind"] == "eval"
        ]
        assert evals[-1]["val_loss"] == row["final_val_loss"]
        want_curves += [
            [row["run"], row["step"], str(row["seed"]), str(e["iter"]), str(e["tokens"])]
            for e in evals
        ]
    with open(run_dir / "val_curves.csv", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == ["run", "step", "seed", "iter", "tokens", "val_loss"]
    assert [row[:5] for row in lines[1:]] == want_curves
    assert [st["vs_reference"] for st in s.steps] == ["reference", "not resolved"]


def test_a_second_installation_rewrites_nothing_but_the_invocations(installed):
    checkout, run_dir, _ = installed
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    again = install(checkout)
    assert again.returncode == 0 and "(0 files written)" in again.stderr, again.stderr
    after = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    changed = {p.name for p in before if before[p] != after[p]}
    assert changed <= {"manifest.json", "summary.md"}, changed
    m = json.loads((run_dir / "manifest.json").read_text())
    assert len(m["invocations"]) == 2


def test_old_flags_get_one_line_saying_where_they_went(installed):
    checkout, _, _ = installed
    out = install(checkout, "--steps", "0,8")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "knlp: --steps is a build setting now: give it before `--`, as in "
        "`bazel run //experiments:gate_ratio --steps=0,8` (experiments/README.md)"
    )
    out = install(checkout, "--on-failure=stop")
    assert out.returncode == 2 and "--on-failure is gone" in out.stderr


def test_a_results_dir_holding_other_runs_is_refused(installed, tmp_path):
    checkout, run_dir, _ = installed
    m = json.loads((run_dir / "manifest.json").read_text())
    other = tmp_path / "other" / "gpt2_ratio_ablation" / run_dir.name
    other.mkdir(parents=True)
    (other / "manifest.json").write_text(json.dumps(dict(m, runs={"step00-s1337": "0" * 64})))
    out = install(checkout, "--results-dir", str(tmp_path / "other"))
    assert out.returncode == 2 and "holds other runs" in out.stderr
    assert json.loads((other / "manifest.json").read_text())["runs"] == {"step00-s1337": "0" * 64}
