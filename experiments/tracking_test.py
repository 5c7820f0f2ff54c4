"""Trackers: W&B offline really records, no key means local-only in one line, no secrets."""

import glob
import os

import pytest

from experiments.tracking import NullTracker, make_tracker


def test_no_key_runs_locally_and_says_so(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
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
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_API_KEY", "secret-value-that-must-not-leak-0123456789abcdef")
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
    assert b"secret-value-that-must-not-leak" not in blob
    assert b"hunter2" not in blob
