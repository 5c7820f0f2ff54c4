"""Damaged and unwritable results: a truncated metrics.jsonl under DONE, corrupt
JSON, a full disk, a denied write, a killed step with no checkpoint yet."""

import argparse
import errno
import os

import pytest
import torch

from experiments import options, results, runner, summary
from experiments.ddp_check import BigramLM
from experiments.results import ResultsError, RunDir, atomic_write_json, read_json
from experiments.trainer import TrainConfig, Trainer

# Four iterations of a tiny bigram model on one fixed batch: seconds on a CPU.
TINY = dict(max_iters=4, batch_size=2, eval_interval=4, eval_iters=1, tokens_per_sample=8)


def _build(device):
    model = BigramLM(vocab=64, dim=8)
    batch = torch.randint(0, 64, (2, 9))
    return runner.StepBuild(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
        get_batch=lambda split, g: (batch[:, :8], batch[:, 1:]),
        train_cfg=TrainConfig(progress=False, **TINY),
    )


def _spec(name):
    return runner.StepSpec(name=name, label=name, build=_build)


def _error_line(capsys):
    """The run's last stderr line (earlier ones are its log), with no traceback before it."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def _run(tmp_path, steps=("a", "b")):
    ap = argparse.ArgumentParser()
    options.add_common_args(ap)
    args = ap.parse_args(["--results-dir", str(tmp_path), "--run-id", "r", "--no-progress"])
    opts = options.resolve(args, list(steps))
    specs = [_spec(s) for s in steps]
    return results.exit_on_results_error(
        lambda: runner.run_steps("integrity", specs, opts, {"x": 1}, {})
    )


def test_truncated_metrics_under_done_is_reported_and_not_plotted(tmp_path, capsys):
    assert _run(tmp_path) == 0
    run = tmp_path / "integrity" / "r"
    done = read_json(str(run / "steps" / "a" / "DONE"))
    metrics = run / "steps" / "a" / "metrics.jsonl"
    assert done["integrity"]["metrics.jsonl"]["lines"] == len(metrics.read_bytes().splitlines())
    plot = run / "plots" / "loss_curves.png"
    plotted = plot.stat().st_mtime_ns
    metrics.write_bytes(b"".join(metrics.read_bytes().splitlines(keepends=True)[:2]))
    capsys.readouterr()

    assert _run(tmp_path) == 2
    err = _error_line(capsys)
    assert err.startswith("error: step a is damaged")
    assert f"step a is damaged: {metrics} is 2 lines" in err
    assert f"rm -r {run / 'steps' / 'a'}" in err
    assert "bazel run //experiments:integrity -- --profile" in err and "--steps a" in err
    assert plot.stat().st_mtime_ns == plotted  # not redrawn from the damaged file
    with pytest.raises(ResultsError, match="step a is damaged"):
        summary.write_summary(RunDir(str(run)), "integrity", [_spec("a")], {"x": 1})
    assert plot.stat().st_mtime_ns == plotted


@pytest.mark.parametrize("name", ["manifest.json", "steps/a/DONE"])
def test_corrupt_json_names_its_file(tmp_path, capsys, name):
    assert _run(tmp_path, steps=("a",)) == 0
    path = tmp_path / "integrity" / "r" / name
    path.write_text(path.read_text()[:-20])
    capsys.readouterr()
    assert _run(tmp_path, steps=("a",)) == 2
    assert _error_line(capsys).startswith(f"error: {path}: corrupt JSON at line")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_failed_write_is_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys, code):
    """A full disk or a denied write, simulated by failing fsync (no tmpfs needed)."""
    path = tmp_path / "x.json"
    atomic_write_json(str(path), {"kept": 1})
    before = path.read_bytes()

    def fail(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(results.os, "fsync", fail)
    with pytest.raises(ResultsError, match=f"cannot write {path}: {os.strerror(code)}"):
        atomic_write_json(str(path), {"kept": 2})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.json"]  # no temporary file left
    with results.JsonlWriter(str(tmp_path / "m.jsonl")) as w:
        with pytest.raises(ResultsError, match=f"cannot write {tmp_path / 'm.jsonl'}"):
            w.write({"iter": 1})

    def main():
        atomic_write_json(str(path), {"kept": 3})
        return 0

    assert results.exit_on_results_error(main) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot write {path}") and "\n" not in err


def test_full_disk_during_a_run_exits_2_and_keeps_finished_steps(tmp_path, monkeypatch, capsys):
    assert _run(tmp_path, steps=("a",)) == 0
    run = tmp_path / "integrity" / "r"
    done_a = (run / "steps" / "a" / "DONE").read_bytes()
    real_fsync = os.fsync

    def fsync(fd):  # the disk fills up while step b writes its metrics
        if os.readlink(f"/proc/self/fd/{fd}").endswith("b/metrics.jsonl"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(results.os, "fsync", fsync)
    capsys.readouterr()
    assert _run(tmp_path, steps=("a", "b")) == 2
    monkeypatch.setattr(results.os, "fsync", real_fsync)
    err = _error_line(capsys)
    assert err.startswith("error: cannot write") and "No space" in err
    assert (run / "steps" / "a" / "DONE").read_bytes() == done_a
    assert not (run / "steps" / "b" / "FAILED").exists()  # the disk, not the step, failed


def test_killed_step_without_checkpoint_says_it_restarts(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"iter": 0, "kind": "train", "loss": 4.0}\n')
    said = []
    model = BigramLM(vocab=64, dim=8)
    trainer = Trainer(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters()),
        get_batch=None,
        cfg=TrainConfig(max_iters=1, progress=False),
        metrics_path=str(metrics),
        checkpoint_path=str(tmp_path / "ckpt.pt"),
        step_name="s",
        log=said.append,
    )
    assert trainer.maybe_resume() is False
    assert said == ["[s] no checkpoint yet, restarting step"]
    assert not metrics.exists()
