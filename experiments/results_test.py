"""The record's files and fields: atomic writes, torn JSONL lines, dumps, CSV, the
manifest's required fields without secrets, git state, profiles and the README table."""

import dataclasses
import errno
import json
import math
import os
import pathlib
import platform
import subprocess

import numpy as np
import pytest

from experiments import install, profiles, provenance, results, testing
from experiments.record import (
    REQUIRED_FIELDS,
    SCHEMA,
    Manifest,
    RecordError,
    RunResult,
    Summary,
    get_field,
    missing_fields,
)
from experiments.results import (
    JsonlWriter,
    ResultsError,
    atomic_write_json,
    read_json,
    read_jsonl,
    repair_jsonl,
    write_csv,
)
from experiments.run_profile import ProfileError, parse_duration


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


def test_a_result_is_done_or_failed_for_a_declared_reason():
    done = testing.run_result("s0-s1", values={"val_loss": 3.0})
    assert RunResult.from_dict(done.to_dict()).done
    failure = {"reason": "nan_loss", "message": "loss is nan", "traceback": ""}
    failed = RunResult.from_dict(
        dataclasses.replace(done, status="failed", failure=failure).to_dict()
    )
    assert not failed.done and failed.failure["reason"] == "nan_loss"
    with pytest.raises(RecordError, match="failure.reason is 'oom'; accepted: nan_loss, error"):
        RunResult.from_dict(dict(failed.to_dict(), failure={"reason": "oom"}), "result.json")
    with pytest.raises(RecordError, match="status 'pending'; accepted: done, failed"):
        RunResult.from_dict(dict(done.to_dict(), status="pending"), "result.json")


SECRETS = {"WANDB_API_KEY": "wandb-key-5f3a9c", "HF_TOKEN": "hf_token_77b1e2"}


def _manifest(tmp_path, argv, flags, existing=None, seeds=1, results_=None):
    """manifest_for over a tiny experiment whose runs recorded this machine and versions."""
    prov = {"machine": provenance.machine("cpu"), "versions": provenance.versions(None)}
    res = results_ or [
        testing.run_result(f"step0{i}-s1337", provenance=prov, experiment="gpt2_ratio_ablation")
        for i in (0, 8)
    ]
    decl = read_json(
        testing.write_experiment(
            tmp_path / "exp", res, experiment="gpt2_ratio_ablation", settings={"seeds": seeds}
        )
    )
    decl["flags"] = flags
    summary = Summary.from_dict(
        {
            "experiment": "gpt2_ratio_ablation",
            "run_id": "cpu-1a2b3c4d",
            "complete": True,
            "metric": "val_loss",
            "metric_label": "val loss",
            "lower_is_better": True,
            "reference": "step00",
            "unigram_entropy": None,
            "steps": [],
            "runs": [],
            "checks": [],
        }
    )
    return install.manifest_for(decl, summary, res, str(tmp_path), argv, existing), res


def test_manifest_holds_every_required_field_and_no_secret(tmp_path, monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    m, res = _manifest(tmp_path, ["--run-id", "a b"], ["--profile=cpu", "--seeds=3"], seeds=3)
    path = tmp_path / "manifest.json"
    atomic_write_json(str(path), m)
    data = path.read_bytes()
    written = json.loads(data)
    assert missing_fields(written) == []
    assert Manifest.from_dict(written, str(path)).to_dict() == written  # the declared schema
    assert written["command"] == (
        "bazel run //experiments:gpt2_ratio_ablation --profile=cpu --seeds=3 -- --run-id 'a b'"
    )
    assert written["schema"] == SCHEMA and written["machine"]["device"] == "cpu"
    assert written["created_utc"].endswith("Z") and len(written["created_utc"]) == 20
    assert written["runs"] == {r.run: r.inputs_sha256 for r in res}
    assert written["train"]["effective_batch_tokens"] == 12 * 64
    assert written["train"]["seeds"] == [1337, 1338, 1339]
    assert written["config"]["profile"]["name"] == "cpu" and written["versions"]["torch"]
    for name, value in SECRETS.items():
        assert value.encode() not in data, f"{name} leaked into manifest.json"
    host = platform.node()
    assert len(host) < 4 or host.encode() not in data  # the host name is not recorded
    again, _ = _manifest(tmp_path, [], ["--profile=cpu"], existing=written)
    assert again["created_utc"] == written["created_utc"] and len(again["invocations"]) == 2


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
    declared = profiles.declared()
    assert list(declared) == ["cpu", "w7900", "a10g-x4", "h100", "b200-x4"]
    gpu = [p for p in declared.values() if p.device == "cuda"]
    # Every GPU profile trains GPT-2 124M on the same effective batch, so runs compare.
    assert {p.effective_batch_tokens for p in gpu} == {64 * 1024}
    assert all(p.dims == "real" and p.block_size == 1024 for p in gpu)
    assert all(p.train.max_iters == 10400 and p.train.dtype == "bfloat16" for p in gpu)
    p = profiles.resolve("cpu", iters=7, time="2m")
    assert p.train.max_iters == 7 and p.train.time_budget_s == 120 and p.train.eval_interval == 7
    assert profiles.resolve("cpu") == declared["cpu"]  # no override, the declaration itself
    with pytest.raises(ProfileError, match="valid profiles: cpu, w7900, a10g-x4, h100, b200-x4"):
        profiles.get_profile("tpu")
    with pytest.raises(ProfileError, match="--iters 0: must be >= 1"):
        profiles.resolve("cpu", iters=0)
    assert parse_duration("1.5h") == 5400
    with pytest.raises(ValueError, match="--time 'soon'"):
        parse_duration("soon")


def test_a_malformed_profile_names_its_fields():
    decl = dict(profiles.declarations()["PROFILES"]["cpu"])
    decl["datset"] = decl.pop("dataset")
    with pytest.raises(ProfileError, match=r"'cpu': missing fields \['dataset'\], unknown fields"):
        profiles.Profile.from_declaration("cpu", decl)


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
    (tmp_path / ".gitignore").write_text("results/\n")
    git("add", ".gitignore")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ignore")
    head = git("rev-parse", "HEAD")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.json").write_text("{}")  # ignored: still clean
    assert provenance.git_state(str(tmp_path)) == {"commit": head, "dirty": False}
    (tmp_path / "new.py").write_text("u")  # untracked, not ignored: a glob would build it
    assert provenance.git_state(str(tmp_path)) == {"commit": head, "dirty": True}
    (tmp_path / "new.py").unlink()
    (tmp_path / "f.txt").write_text("b")
    assert provenance.git_state(str(tmp_path)) == {"commit": head, "dirty": True}
    state = provenance.git_state(str(tmp_path.parent / "no-such-dir"))
    assert state["commit"] is None and state["error"].startswith("no git checkout at ")


def test_the_manifest_records_machine_versions_and_command(tmp_path):
    machine = provenance.machine("cpu", world_size=2)
    assert set(machine) == {
        "device",
        "world_size",
        "cpu",
        "cpu_count",
        "gpu",
        "gpu_memory_gb",
        "os",
        "arch",
    }
    assert machine["world_size"] == 2 and machine["arch"] == platform.machine()
    assert machine["gpu"] is None  # a CPU run names no GPU
    versions = provenance.versions(None)
    assert set(versions) == {
        "python",
        "torch",
        "cuda",
        "rocm",
        "numpy",
        "lock_sha256",
        "accelerator",
    }
    assert versions["python"] == platform.python_version() and versions["lock_sha256"] is None
    info = tmp_path / "venv_info.json"
    info.write_text(json.dumps({"lock_sha256": "ab" * 32, "accelerator": "cpu"}))
    assert provenance.versions(str(info))["lock_sha256"] == "ab" * 32
    m, _ = _manifest(tmp_path, [], [])
    assert m["command"] == "bazel run //experiments:gpt2_ratio_ablation"
    assert m["machine"]["device"] == "cpu" and m["versions"] == versions


def test_runs_made_on_different_machines_are_recorded_as_mixed(tmp_path):
    runs = [
        testing.run_result(run, provenance={"machine": {"cpu": cpu, "os": "linux"}})
        for run, cpu in (("step00-s1337", "epyc"), ("step08-s1337", "xeon"))
    ]
    m, _ = _manifest(tmp_path, [], [], results_=runs)
    assert m["machine"]["os"] == "linux"
    assert m["machine"]["cpu"].startswith("mixed: ") and {"epyc", "xeon"} <= set(
        m["machine"]["cpu"].replace("'", "").replace(";", "").split()
    )


def test_records_are_written_with_sorted_keys():
    assert results.dumps({"b": 1, "a": {"d": 2, "c": 3}}) == '{"a": {"c": 3, "d": 2}, "b": 1}'


def test_a_file_that_is_not_utf8_is_corrupt_json(tmp_path):
    bad = tmp_path / "result.json"
    bad.write_bytes(b'{"val_loss": "\xff"}')
    with pytest.raises(ResultsError) as e:
        read_json(str(bad))
    assert str(e.value) == (
        f"{bad}: corrupt JSON; restore it, or delete it and rerun to write it again"
    )
