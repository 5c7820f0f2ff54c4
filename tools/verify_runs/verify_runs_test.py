"""verify_runs accepts matching runs, names every field that differs, and shows each run's
inputs digest and whether the installed runs agree on it."""

import dataclasses
import json

from experiments.record import SCHEMA, Manifest
from tools.verify_runs import verify_runs

A, B = "a" * 64, "b" * 64


def _write(tmp_path, name, m):
    d = tmp_path / name
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps(m.to_dict()))
    return str(d)


def _manifest(**changes):
    train = {
        "effective_batch_tokens": 65536,
        "max_iters": 10400,
        "time_budget_s": None,
        "compile": True,
        "dataset": "fineweb-edu",
        "eval_protocol": "200x500",
        "dtype": "bfloat16",
    }
    m = Manifest(
        experiment="gpt2_ratio_ablation",
        run_id="h100-1a2b3c4d",
        created_utc="2026-12-03T09:30:00Z",
        command="bazel run //experiments:gpt2_ratio_ablation --profile=h100",
        git={"commit": "abc123", "dirty": False},
        versions={"torch": "2.13.0", "cuda": None, "rocm": None, "lock_sha256": "4a5c"},
        machine={"gpu": None, "world_size": 1},
        train=train,
        config={},
        runs={"step00-s1337": A, "step08-s1337": B},
    )
    return dataclasses.replace(m, **changes)


def _other(m, **train):
    return dataclasses.replace(m, train={**m.train, **train})


def test_identical_runs_are_comparable(tmp_path, capsys):
    m = _manifest()
    a, b = _write(tmp_path, "a", m), _write(tmp_path, "b", m)
    assert verify_runs.main([a, b]) == 0
    out = capsys.readouterr().out
    assert "comparable: 2 runs agree on 15 fields" in out
    assert "inputs: 2 of 2 runs have the same inputs digest in every installed run" in out
    assert f"  step00-s1337: same\n    {a}: {A}\n    {b}: {A}\n" in out


def test_differences_are_named(tmp_path, capsys):
    m = _manifest()
    other = dataclasses.replace(
        _other(m, effective_batch_tokens=32768, compile=False),
        versions={**m.versions, "torch": "2.9.0"},
        machine={**m.machine, "gpu": "NVIDIA H100"},
        git={**m.git, "commit": "def456"},
    )
    a, b = _write(tmp_path, "a", m), _write(tmp_path, "b", other)
    assert verify_runs.main([a, b]) == 1
    out = capsys.readouterr().out
    assert (
        "5 field(s) differ: effective batch, torch.compile, machine, torch version, commit" in out
    )
    assert "32768" in out and "65536" in out
    # Allowing the intended differences makes the rest pass.
    allow = [
        "--allow",
        "effective batch",
        "--allow",
        "torch.compile",
        "--allow",
        "machine",
        "--allow",
        "torch version",
        "--allow",
        "commit",
    ]
    assert verify_runs.main([a, b] + allow) == 0


def test_inputs_digests_are_shown_run_by_run(tmp_path, capsys):
    m = _manifest()
    other = dataclasses.replace(m, runs={"step00-s1337": A, "step08-s1337": "c" * 64})
    third = dataclasses.replace(m, runs={"step00-s1337": A})
    a, b, c = (_write(tmp_path, n, x) for n, x in (("a", m), ("b", other), ("c", third)))
    assert verify_runs.main([a, b, c]) == 0  # shown, not refused: a digest is what changed
    out = capsys.readouterr().out
    assert "inputs: 1 of 2 runs have the same inputs digest in every installed run" in out
    assert f"  step00-s1337: same\n    {a}: {A}\n    {b}: {A}\n    {c}: {A}\n" in out
    assert f"  step08-s1337: missing\n    {a}: {B}\n    {b}: {'c' * 64}\n" in out
    assert f"    {c}: (not in this run)\n" in out
    assert verify_runs.inputs_table({"a": m.to_dict(), "b": other.to_dict()})[1][1] == "differs"


def test_dirty_tree_is_refused(tmp_path, capsys):
    m = _manifest(git={"commit": "abc123", "dirty": True})
    a, b = _write(tmp_path, "a", m), _write(tmp_path, "b", m)
    assert verify_runs.main([a, b]) == 1
    assert "dirty tree" in capsys.readouterr().out


def test_a_manifest_of_another_schema_is_one_line(tmp_path, capsys):
    a = _write(tmp_path, "a", _manifest())
    b = _write(tmp_path, "b", _manifest())
    old = json.loads((tmp_path / "b" / "manifest.json").read_text())
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(dict(old, schema=1)))
    assert verify_runs.main([a, b]) == 2
    err = capsys.readouterr().err
    assert f"{b}/manifest.json: schema is 1; verify_runs reads manifests of schema {SCHEMA}" in err
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(dict(old, runs=None)))
    assert verify_runs.main([a, b]) == 2
    err = capsys.readouterr().err
    assert "manifest.json: runs is None, not a dict" in err and err.count("\n") == 1
