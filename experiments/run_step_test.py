"""One run's action, run as Bazel runs it: its record, its checkpoint store, its failures.

Each test writes a run's spec.json and inputs.txt as experiments/defs.bzl
does (the cpu profile's declaration from profiles.bzl, with a smaller budget)
and runs experiments/run_step.py as a subprocess with a store of its own, so
a SIGKILL kills exactly what Bazel's would: the killed run resumes from its
checkpoint and ends with the metrics of an uninterrupted run; a NaN loss is a
recorded result; a machine failure fails with one line and keeps the
checkpoint. The run is of the "bigram" kind (experiments/bigram_step.py), so
these tests depend on the runner and the trainer and not on models/gpt2; the
GPT-2 kind's own records are tested by experiments_test.py and the gate's runs.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import digest
from experiments.record import RunResult
from experiments.results import read_jsonl
from experiments.store import RunStore, StoreError
from tools.bazel.bzl_data import load_bzl

ROOT = Path(__file__).resolve().parent.parent
CPU = load_bzl(ROOT / "experiments" / "profiles.bzl")["PROFILES"]["cpu"]


def data_root() -> str:
    """Where //data:shakespeare_char is: the runfiles under Bazel, bazel-bin under pytest."""
    here = Path(__file__).resolve().parent.parent / "data"
    for root in (here, ROOT / "bazel-bin" / "data"):
        if (root / "shakespeare_char" / "meta.json").exists():
            return str(root)
    pytest.skip("//data:shakespeare_char is not built (bazel build //data:shakespeare_char)")


def write_run(tmp: Path, iters=12, **train) -> dict:
    """spec.json and inputs.txt of one cpu-profile run of a BigramLM; its paths."""
    profile = dict(CPU, train=dict(CPU["train"], **train))
    spec = {
        "experiment": "run_step_test",
        "step": "bigram",
        "run": "bigram-s1337",
        "label": "BigramLM, rank 32",
        "seed": 1337,
        "kind": "bigram",
        "declaration": {"dim": 32},
        "profile": "cpu",
        "profile_declaration": profile,
        "overrides": {"iters": iters, "time": None},
    }
    (tmp / "out").mkdir(parents=True, exist_ok=True)
    (tmp / "spec.json").write_text(json.dumps(spec))
    sources = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("experiments/*.py"))
    lines = [f"spec.json\t{tmp / 'spec.json'}"] + [f"{s}\t{ROOT / s}" for s in sources]
    (tmp / "inputs.txt").write_text("\n".join(lines) + "\n")
    return {"spec": tmp / "spec.json", "inputs": tmp / "inputs.txt", "out": tmp / "out"}


def command(paths, store) -> list[str]:
    return [
        sys.executable,
        "-m",
        "experiments.run_step",
        *("--spec", str(paths["spec"]), "--inputs", str(paths["inputs"])),
        *("--data-root", data_root(), "--out", str(paths["out"]), "--store", str(store)),
    ]


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


def run(paths, store, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(paths, store), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout
    )


def result(paths) -> RunResult:
    return RunResult.from_dict(json.loads((paths["out"] / "result.json").read_text()))


def test_a_run_writes_its_record_and_clears_its_store(tmp_path):
    paths = write_run(tmp_path / "a", iters=40, warmup_iters=4)
    out = run(paths, tmp_path / "store")
    assert out.returncode == 0, out.stderr[-3000:]
    res = result(paths)
    assert res.status == "done" and res.run == "bigram-s1337" and res.seed == 1337
    assert res.values["iters"] == 40 and res.values["final_train_loss"] < res.values["first_loss"]
    assert res.built["model_class"] == "BigramLM" and res.values["resumed_from"] is None
    assert [(c["name"], c["ok"]) for c in res.checks] == [("table moved", True)]
    assert res.inputs_sha256 == digest.inputs_digest(digest.read_inputs(str(paths["inputs"])))
    for name, rec in res.files.items():
        assert digest.file_sha256(str(paths["out"] / name)) == rec["sha256"], name
    train = [r["iter"] for r in read_jsonl(str(paths["out"] / "metrics.jsonl")) if "loss" in r]
    assert train == list(range(1, 41))
    assert (paths["out"] / "model.pt").stat().st_size > 4 * res.values["params"]  # fp32 weights
    assert list((tmp_path / "store").iterdir()) == []  # the run's directory is gone


def test_sigkill_mid_run_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path):
    killed = write_run(tmp_path / "killed", iters=400, checkpoint_interval=100)
    store = tmp_path / "store"
    proc = subprocess.Popen(
        command(killed, store), cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if list(store.glob("*/ckpt.pt")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()[-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed["out"] / "result.json").exists()
    again = run(killed, store)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (killed["out"] / "log.txt").read_text()
    assert "resumed from checkpoint at iter" in log, log
    fresh = write_run(tmp_path / "fresh", iters=400, checkpoint_interval=100)
    assert run(fresh, tmp_path / "store2").returncode == 0
    a, b = result(killed).values, result(fresh).values
    assert a["resumed_from"] in (100, 200, 300) and b["resumed_from"] is None
    for key in ("first_loss", "final_train_loss", "val_loss", "best_val_loss", "iters"):
        assert f"{a[key]:.6g}" == f"{b[key]:.6g}", key
    iters = [r["iter"] for r in read_jsonl(str(killed["out"] / "metrics.jsonl")) if "loss" in r]
    assert iters == list(range(1, 401))  # each iteration recorded once


def test_sigterm_saves_a_checkpoint_where_it_stops(tmp_path):
    paths = write_run(tmp_path / "t", iters=100_000)
    store = tmp_path / "store"
    proc = subprocess.Popen(
        command(paths, store), cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        recs = [r for p in store.glob("*/metrics.jsonl") for r in read_jsonl(str(p))]
        if len(recs) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()  # a run that ignored SIGTERM would train 100,000 iterations
    assert proc.returncode == 1 and "stopped by SIGTERM at iter" in err, err[-2000:]
    assert "build again to resume" in err.strip().splitlines()[-1]
    assert len(list(store.glob("*/ckpt.pt"))) == 1


def test_a_nan_loss_is_a_recorded_result(tmp_path):
    paths = write_run(tmp_path / "n", iters=6, lr=1e30, min_lr=1e30, warmup_iters=0)
    out = run(paths, tmp_path / "store")
    assert out.returncode == 0, out.stderr[-3000:]
    res = result(paths)
    assert res.status == "failed" and res.failure["reason"] == "nan_loss", res.failure
    assert (paths["out"] / "metrics.jsonl").exists() and (paths["out"] / "model.pt").exists()


def test_a_machine_failure_fails_the_action_with_one_line(tmp_path):
    paths = write_run(tmp_path / "m", iters=4)
    cmd = command(paths, tmp_path / "store")
    cmd[cmd.index("--data-root") + 1] = str(tmp_path / "no-data")
    out = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("run_step: bigram-s1337: FileNotFoundError: dataset 'shakespeare_char'")
    assert "build again to resume" in last
    assert not (paths["out"] / "result.json").exists()


def test_the_digest_is_the_inputs_content_and_short_paths(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("x = 1\n")
    one = digest.inputs_digest([("models/gpt2/layers.py", str(a))])
    assert one == digest.inputs_digest([("models/gpt2/layers.py", str(b))])  # another checkout
    assert one != digest.inputs_digest([("models/gpt2/gpt2.py", str(a))])
    b.write_text("x = 5\n")
    assert one != digest.inputs_digest([("models/gpt2/layers.py", str(b))])


def test_the_store_is_private_and_refuses_another_users_root(tmp_path):
    store = RunStore("d" * 64, tmp_path / "runs")
    assert (tmp_path / "runs").stat().st_mode & 0o777 == 0o700
    store.remove()
    other = tmp_path / "theirs"
    other.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to plant a directory owned by another user")
    try:
        os.chown(other, 65534, 65534)
    except OSError:
        pytest.skip("this sandbox cannot give a directory to another user")
    with pytest.raises(StoreError, match="owned by uid 65534"):
        RunStore("d" * 64, other)
