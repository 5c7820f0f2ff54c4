"""Atomic files, torn JSONL lines, DONE/FAILED markers, profile and step parsing."""

import dataclasses
import errno
import json
import math
import os
import pathlib
import platform
import subprocess
import sys

import numpy as np
import pytest

from experiments import profiles, results
from experiments.results import (
    REQUIRED_FIELDS,
    JsonlWriter,
    ResultsError,
    RunDir,
    atomic_write_json,
    build_manifest,
    get_field,
    missing_fields,
    read_json,
    read_jsonl,
    repair_jsonl,
    write_csv,
    write_manifest,
)


def test_atomic_json_leaves_no_temporary_files(tmp_path):
    p = tmp_path / "a" / "x.json"
    atomic_write_json(str(p), {"b": 1, "nan": float("nan")})
    atomic_write_json(str(p), {"b": 2})
    assert read_json(str(p)) == {"b": 2}
    assert os.listdir(p.parent) == ["x.json"]
    atomic_write_json(str(p), {"loss": float("inf")})
    assert json.loads(p.read_text()) == {"loss": None}  # strict JSON, no Infinity


def test_torn_last_line_is_dropped_and_repaired(tmp_path):
    p = str(tmp_path / "m.jsonl")
    with JsonlWriter(p) as w:
        w.write({"iter": 1})
        w.write({"iter": 2})
    with open(p, "a") as f:
        f.write('{"iter": 3, "lo')  # a kill in the middle of a line
    assert read_jsonl(p) == [{"iter": 1}, {"iter": 2}]
    with JsonlWriter(p) as w:  # reopening repairs before appending
        w.write({"iter": 3})
    assert read_jsonl(p) == [{"iter": 1}, {"iter": 2}, {"iter": 3}]
    assert repair_jsonl(p, keep=lambda r: r["iter"] < 3) == [{"iter": 1}, {"iter": 2}]
    with open(p, "a") as f:
        f.write("garbage\n")
        f.write('{"iter": 9}\n')
    with pytest.raises(ResultsError, match="m.jsonl:3: corrupt JSONL line"):
        read_jsonl(p)


def test_run_dir_done_and_failed(tmp_path):
    run = RunDir(str(tmp_path / "run"))
    run.mark_failed("s0", "nan_loss", {"message": "loss is nan"})
    assert run.failure("s0")["reason"] == "nan_loss" and not run.is_done("s0")
    run.mark_done("s0", {"val_loss": 3.0})
    assert run.is_done("s0") and run.failure("s0") is None
    assert run.done_result("s0") == {"val_loss": 3.0}


def test_manifest_holds_every_required_field_and_no_secret(tmp_path, monkeypatch):
    secrets = {"WANDB_API_KEY": "wandb-key-5f3a9c", "HF_TOKEN": "hf_token_77b1e2"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sys, "argv", ["gpt2_ratio_ablation.py", "--seeds", "3", "--note", "a b"])
    m = build_manifest(
        "gpt2_ratio_ablation",
        "cpu-1a2b3c4d",
        "//experiments:gpt2_ratio_ablation",
        {"lr": 6e-4},
        {"dtype": "float32"},
        "cpu",
    )
    run = RunDir(str(tmp_path / "run"))
    write_manifest(run, m)
    data = open(run.path("manifest.json"), "rb").read()
    written = json.loads(data)
    assert missing_fields(written) == []
    assert written["command"] == (
        "bazel run //experiments:gpt2_ratio_ablation -- --seeds 3 --note 'a b'"
    )
    assert written["schema"] == 1 and written["machine"]["device"] == "cpu"
    assert written["created_utc"].endswith("Z") and len(written["created_utc"]) == 20
    for name, value in secrets.items():
        assert value.encode() not in data, f"{name} leaked into manifest.json"
    host = platform.node()
    assert len(host) < 4 or host.encode() not in data  # the host name is not recorded


def test_missing_fields_names_a_removed_field():
    m = {}
    for dotted in REQUIRED_FIELDS:
        *parents, leaf = dotted.split(".")
        cur = m
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[leaf] = None  # null is recorded, so present
    assert missing_fields(m) == []
    del m["git"]["dirty"]
    del m["run_id"]
    assert missing_fields(m) == ["run_id", "git.dirty"]
    assert get_field(m, "git.commit") is None and get_field(m, "machine.cpu") is None


def test_write_csv_fixed_columns_full_precision(tmp_path):
    p = str(tmp_path / "c.csv")
    write_csv(p, ["run", "val_loss"], [{"val_loss": 0.1 + 0.2, "run": "a"}, {"run": "b"}])
    assert open(p, "rb").read() == b"run,val_loss\na,0.30000000000000004\nb,\n"
    with pytest.raises(ValueError):
        write_csv(p, ["run"], [{"run": "a", "extra": 1}])
    assert open(p, "rb").read().startswith(b"run,val_loss")  # the old file is kept


def test_profiles_and_overrides():
    assert set(profiles.PROFILES) == {"cpu", "w7900", "a10g-x4", "h100", "b200-x4"}
    gpu = [p for p in profiles.PROFILES.values() if p.device == "cuda"]
    # Every GPU profile trains GPT-2 124M on the same effective batch, so runs compare.
    assert {p.effective_batch_tokens for p in gpu} == {64 * 1024}
    assert all(p.dims == "real" and p.block_size == 1024 for p in gpu)
    assert all(p.max_iters == 10400 and p.dtype == "bfloat16" for p in gpu)
    p = profiles.resolve("cpu", iters=7, time="2m")
    assert p.max_iters == 7 and p.time_budget_s == 120 and p.eval_interval == 7
    with pytest.raises(ValueError, match="valid profiles: cpu, w7900, a10g-x4, h100, b200-x4"):
        profiles.get_profile("tpu")
    with pytest.raises(ValueError, match="valid steps: 0, 1, 2"):
        profiles.parse_steps("0,7", ["0", "1", "2"])
    assert profiles.parse_steps("2,0,2", ["0", "1", "2"]) == ["2", "0"]
    assert profiles.parse_duration("1.5h") == 5400
    with pytest.raises(ValueError, match="--time 'soon'"):
        profiles.parse_duration("soon")


def test_readme_profile_table_is_generated_from_profiles():
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
    with open(readme) as f:
        assert profiles.markdown_table() in f.read(), "run: python -m experiments.profiles"


def test_an_unwritable_file_is_one_line_naming_it(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "open", full, raising=False)  # the module's own open()
    path = tmp_path / "metrics.jsonl"
    with pytest.raises(ResultsError) as e:
        JsonlWriter(str(path))
    assert str(e.value) == (
        f"cannot write {path}: No space left on device. Nothing already written was lost "
        "(a file being replaced keeps its old content); free space or fix permissions, "
        "then run the same command again: finished steps are kept"
    )


@dataclasses.dataclass
class _Point:
    x: int
    y: float


def test_dumps_writes_what_json_cannot():
    record = {
        1: (np.arange(3), _Point(1, math.inf)),
        "array": np.array([1.5, np.nan]),
        "path": pathlib.Path("/a/b"),
        "bad": [math.nan, -math.inf, 0.5],
    }
    assert json.loads(results.dumps(record)) == {
        "1": [[0, 1, 2], {"x": 1, "y": None}],
        "path": "/a/b",
        "bad": [None, None, 0.5],
        "array": [1.5, None],
    }


def test_git_state_reads_the_checkout(tmp_path):
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    head = git("rev-parse", "HEAD")
    (tmp_path / ".gitignore").write_text("results/\n")
    git("add", ".gitignore")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ignore")
    head = git("rev-parse", "HEAD")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.json").write_text("{}")  # ignored: still clean
    assert results.git_state(str(tmp_path)) == {"commit": head, "dirty": False}
    (tmp_path / "new.py").write_text("u")  # untracked, not ignored: a glob would build it
    assert results.git_state(str(tmp_path)) == {"commit": head, "dirty": True}
    (tmp_path / "new.py").unlink()
    (tmp_path / "f.txt").write_text("b")
    assert results.git_state(str(tmp_path)) == {"commit": head, "dirty": True}
    state = results.git_state(str(tmp_path.parent / "no-such-dir"))
    assert state["commit"] is None and state["error"].startswith("no git checkout at ")


def test_the_manifest_records_machine_versions_and_command():
    m = build_manifest("e", "r", "//x:y", {}, {}, "cpu", world_size=2, argv=[])
    assert m["command"] == "bazel run //x:y" and m["argv"] == []
    assert m["machine"]["world_size"] == 2
    assert set(m["machine"]) == {
        "device",
        "world_size",
        "cpu",
        "cpu_count",
        "gpu",
        "gpu_memory_gb",
        "os",
        "arch",
    }
    assert m["machine"]["arch"] == platform.machine()
    assert set(m["versions"]) == {
        "python",
        "torch",
        "cuda",
        "rocm",
        "numpy",
        "lock_sha256",
        "accelerator",
    }
    assert m["versions"]["python"] == platform.python_version()


def test_a_deleted_metrics_file_is_named_missing(tmp_path):
    run = RunDir(str(tmp_path), rerun_command="rerun --steps {step}")
    JsonlWriter(run.metrics_path("s0")).write({"iter": 1})
    run.mark_done("s0", {"val_loss": 1.0})
    os.unlink(run.metrics_path("s0"))
    with pytest.raises(ResultsError, match=r"is missing, but DONE recorded 1 lines"):
        run.done_result("s0")


def test_records_are_written_with_sorted_keys():
    assert results.dumps({"b": 1, "a": {"d": 2, "c": 3}}) == '{"a": {"c": 3, "d": 2}, "b": 1}'


def test_a_file_that_is_not_utf8_is_corrupt_json(tmp_path):
    bad = tmp_path / "DONE"
    bad.write_bytes(b'{"val_loss": "\xff"}')
    with pytest.raises(ResultsError) as e:
        read_json(str(bad))
    assert str(e.value) == (
        f"{bad}: corrupt JSON; restore it, or delete it and rerun to write it again"
    )
