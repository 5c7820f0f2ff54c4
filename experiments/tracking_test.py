"""Trackers: W&B offline really records, no key means local-only in one line, no secrets;
the key may come from W&B's netrc entry; the installer mirrors each run once."""

import glob
import os

import pytest

from experiments import testing, tracking
from experiments.results import JsonlWriter, atomic_write_json, read_json
from experiments.tracking import NullTracker, make_tracker

SECRET = "secret-value-that-must-not-leak-0123456789abcdef"


def _offline(monkeypatch, tmp_path):
    """W&B in offline mode, every one of its directories under tmp_path, a key set."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_API_KEY", SECRET)


def test_no_key_runs_locally_and_says_so(monkeypatch, tmp_path):
    _no_key(monkeypatch, tmp_path)
    said = []
    t = make_tracker("wandb", "p", "r", {}, str(tmp_path), say=said.append)
    assert isinstance(t, NullTracker)
    assert len(said) == 1 and "recording locally only" in said[0]


def test_trackio_missing_is_one_line(tmp_path):
    said = []
    t = make_tracker("trackio", "p", "r", {}, str(tmp_path), say=said.append)
    try:
        import trackio  # noqa: F401
    except ImportError:
        assert isinstance(t, NullTracker) and len(said) == 1 and "not in the lock" in said[0]


def test_unknown_tracker_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="accepted: none, wandb, trackio"):
        make_tracker("mlflow", "p", "r", {}, str(tmp_path))


def test_wandb_offline_writes_a_run_without_secrets(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    config = {"lr": 0.1, "nested": {"api_key": "hunter2", "n": 3}}
    t = make_tracker("wandb", "knlp-test", "run1", config, str(tmp_path / "wandb"))
    assert t.name == "wandb"
    for i in range(3):
        t.log({"s/loss": 3.0 - i}, step=i)
    t.finish()
    files = glob.glob(str(tmp_path / "wandb" / "**" / "*.wandb"), recursive=True)
    assert files, "offline W&B run file not written"
    blob = b"".join(
        open(f, "rb").read()
        for f in glob.glob(str(tmp_path / "**" / "*"), recursive=True)
        if os.path.isfile(f)
    )
    assert SECRET.encode() not in blob
    assert b"hunter2" not in blob


def _no_key(monkeypatch, tmp_path):
    """No key in the environment and no netrc entry, whatever this machine holds."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def _netrc(tmp_path, host):
    path = tmp_path / "netrc"
    path.write_text(f"machine {host}\n  login user\n  password k-0123456789abcdef\n")
    path.chmod(0o600)
    return str(path)


def test_the_key_may_come_from_the_environment_or_wandb_netrc_entry(tmp_path, monkeypatch):
    assert tracking.wandb_key_available({"WANDB_API_KEY": "k"}, str(tmp_path / "none"))
    assert tracking.wandb_key_available({}, _netrc(tmp_path, "api.wandb.ai"))
    assert not tracking.wandb_key_available({}, _netrc(tmp_path, "example.org"))
    assert not tracking.wandb_key_available({}, str(tmp_path / "none"))
    (tmp_path / "bad").write_text("machine\n")
    assert not tracking.wandb_key_available({}, str(tmp_path / "bad"))
    # `wandb login` wrote the netrc entry: make_tracker starts W&B and says nothing.
    _no_key(monkeypatch, tmp_path)
    monkeypatch.setenv("NETRC", _netrc(tmp_path, "api.wandb.ai"))
    started = []
    monkeypatch.setattr(tracking, "WandbTracker", lambda *a: started.append(a) or "wandb run")
    said = []
    assert make_tracker("wandb", "p", "r", {}, str(tmp_path / "w"), say=said.append) == "wandb run"
    assert len(started) == 1 and said == []


def _installed(tmp_path, runs):
    """An installed run directory: manifest.json and runs/<run>/{result.json, metrics.jsonl}."""
    run_dir = tmp_path / "cpu-1a2b3c4d"
    for run in runs:
        res = testing.run_result(run, built={"model_class": "GPT2"})
        atomic_write_json(str(run_dir / "runs" / run / "result.json"), res.to_dict())
        with JsonlWriter(str(run_dir / "runs" / run / "metrics.jsonl")) as w:
            for rec in testing.metrics_of([3.0, 2.5], [2.4]):
                w.write(rec)
    config = {"settings": {"steps": "0,8"}, "api_key": "hunter2"}
    atomic_write_json(str(run_dir / "manifest.json"), {"config": config})
    return run_dir


class _Recorder:
    """make_tracker's stand-in: records what each run logs."""

    def __init__(self):
        self.made = []

    def __call__(self, kind, project, run_name, config, directory, group=None, say=None):
        self.made.append({"name": run_name, "project": project, "config": config, "logged": []})
        made = self.made[-1]

        class T:
            def log(self, data, step=None):
                made["logged"].append((step, data))

            def finish(self):
                made["finished"] = True

        return T()


def test_mirror_runs_sends_each_installed_run_once(tmp_path, monkeypatch):
    run_dir = _installed(tmp_path, ["step00-s1337", "step08-s1337"])
    rec = _Recorder()
    monkeypatch.setattr(tracking, "make_tracker", rec)
    sent = tracking.mirror_runs("wandb", "gpt2_ratio_ablation", str(run_dir))
    assert sent == ["step00-s1337", "step08-s1337"]
    assert [m["name"] for m in rec.made] == [
        "cpu-1a2b3c4d/step00-s1337",
        "cpu-1a2b3c4d/step08-s1337",
    ]
    first = rec.made[0]
    assert first["project"] == "knlp-gpt2_ratio_ablation" and first["finished"]
    assert first["config"]["built"] == {"model_class": "GPT2"}
    assert first["logged"][0] == (1, {"train/iter": 1, "train/loss": 3.0, "train/tokens": 768})
    assert first["logged"][-1][0] == 2 and first["logged"][-1][1]["eval/val_loss"] == 2.4
    assert read_json(str(run_dir / "tracking" / "wandb.json")) == {"runs": sent}
    assert tracking.mirror_runs("wandb", "gpt2_ratio_ablation", str(run_dir)) == []  # sent once
    assert len(rec.made) == 2
    _installed(tmp_path, ["step00-s1337", "step08-s1337", "step08-s1338"])  # a new seed
    assert tracking.mirror_runs("wandb", "gpt2_ratio_ablation", str(run_dir)) == ["step08-s1338"]
    assert tracking.mirror_runs("none", "gpt2_ratio_ablation", str(run_dir)) == []


def test_mirror_runs_without_a_key_sends_nothing_and_says_so_once(tmp_path, monkeypatch):
    _no_key(monkeypatch, tmp_path)
    run_dir = _installed(tmp_path, ["step00-s1337", "step08-s1337"])
    said = []
    assert tracking.mirror_runs("wandb", "e", str(run_dir), say=said.append) == []
    assert len(said) == 1 and "recording locally only" in said[0]
    assert not (run_dir / "tracking" / "wandb.json").exists()  # sent later, once there is a key


def test_mirror_runs_writes_offline_wandb_runs_without_secrets(tmp_path, monkeypatch):
    _offline(monkeypatch, tmp_path)
    run_dir = _installed(tmp_path, ["step00-s1337", "step08-s1337"])
    assert tracking.mirror_runs("wandb", "e", str(run_dir)) == ["step00-s1337", "step08-s1337"]
    files = glob.glob(str(run_dir / "tracking" / "**" / "*.wandb"), recursive=True)
    assert len({os.path.realpath(f) for f in files}) == 2  # one W&B run per run
    blob = b"".join(
        open(f, "rb").read()
        for f in glob.glob(str(tmp_path / "**" / "*"), recursive=True)
        if os.path.isfile(f) and not f.endswith("manifest.json")
    )
    assert SECRET.encode() not in blob and b"hunter2" not in blob
