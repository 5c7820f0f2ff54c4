"""verify_runs accepts matching runs and names every field that differs."""

import copy
import json

from tools.verify_runs import verify_runs


def _write(tmp_path, name, m):
    d = tmp_path / name
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps(m))
    return str(d)


def _manifest():
    train = {
        "effective_batch_tokens": 65536,
        "max_iters": 10400,
        "time_budget_s": None,
        "compile": True,
        "dataset": "fineweb-edu",
        "eval_protocol": "200x500",
        "dtype": "bfloat16",
    }
    return {
        "train": train,
        "git": {"commit": "abc123", "dirty": False},
        "versions": {"torch": "2.13.0", "cuda": None, "rocm": None, "lock_sha256": "4a5c"},
        "machine": {"gpu": None, "world_size": 1},
    }


def test_identical_runs_are_comparable(tmp_path, capsys):
    m = _manifest()
    a, b = _write(tmp_path, "a", m), _write(tmp_path, "b", copy.deepcopy(m))
    assert verify_runs.main([a, b]) == 0
    assert "comparable" in capsys.readouterr().out


def test_differences_are_named(tmp_path, capsys):
    m = _manifest()
    other = copy.deepcopy(m)
    other["train"]["effective_batch_tokens"] = 32768
    other["train"]["compile"] = False
    other["versions"]["torch"] = "2.9.0"
    other["machine"]["gpu"] = "NVIDIA H100"
    other["git"]["commit"] = "def456"
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


def test_dirty_tree_is_refused(tmp_path, capsys):
    m = _manifest()
    m["git"]["dirty"] = True
    a, b = _write(tmp_path, "a", m), _write(tmp_path, "b", copy.deepcopy(m))
    assert verify_runs.main([a, b]) == 1
    assert "dirty tree" in capsys.readouterr().out
