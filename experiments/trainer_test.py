"""The trainer: schedule, real learning, resume from a checkpoint, NaN detection, DDP."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from data.text import open_dataset
from experiments.bigram import BigramLM
from experiments.ddp_check import DATASET
from experiments.results import read_jsonl
from experiments.trainer import TrainConfig, Trainer, TrainingFailure, lr_at

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(max_iters=100, lr=1.0, min_lr=0.1, warmup_iters=10)
    assert lr_at(0, cfg) < lr_at(5, cfg) < lr_at(9, cfg) <= 1.0
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.55, abs=1e-6)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    assert all(lr_at(i, cfg) >= lr_at(i + 1, cfg) for i in range(10, 99))


def _trainer(tmp_path, iters, ckpt_every=0, hooks=(), seed=0):
    ds = open_dataset(DATASET)
    torch.manual_seed(seed)
    cfg = TrainConfig(
        max_iters=iters,
        batch_size=8,
        grad_accum=1,
        lr=5e-2,
        min_lr=5e-3,
        warmup_iters=2,
        eval_interval=10,
        eval_iters=2,
        progress=False,
        checkpoint_interval=ckpt_every,
        tokens_per_sample=32,
    )
    model = BigramLM(vocab=ds.meta["vocab_size"], dim=16)
    return Trainer(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=cfg.lr),
        get_batch=lambda split, g: ds.get_batch(split, 8, 32, g),
        cfg=cfg,
        metrics_path=str(tmp_path / "metrics.jsonl"),
        checkpoint_path=str(tmp_path / "ckpt.pt"),
        hooks=list(hooks),
        log=lambda m: None,
    )


def test_training_lowers_the_loss_and_logs_every_iteration(tmp_path):
    res = _trainer(tmp_path, 30).fit()
    vocab = open_dataset(DATASET).meta["vocab_size"]
    assert res["first_loss"] == pytest.approx(math.log(vocab), abs=0.3)
    assert res["final_train_loss"] < res["first_loss"] - 0.8
    assert res["val_loss"] < res["first_loss"] - 0.8
    recs = read_jsonl(str(tmp_path / "metrics.jsonl"))
    train = [r for r in recs if r["kind"] == "train"]
    assert [r["iter"] for r in train] == list(range(1, 31))
    assert all(r["tokens_per_s"] > 0 and r["lr"] > 0 for r in train)
    assert [r["iter"] for r in recs if r["kind"] == "eval"] == [10, 20, 30]


def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    full = _trainer(a, 20).fit()
    # Run b crashes during iteration 15, after its checkpoint at 10; a new
    # trainer resumes from the checkpoint and must land where a resumed-free run does.
    part = _trainer(b, 20, ckpt_every=10, hooks=[_CrashAt(14)])
    with pytest.raises(_Crash):
        part.fit()
    resumed = _trainer(b, 20, ckpt_every=10)
    res = resumed.fit()
    assert resumed.start_iter == 10
    assert res["val_loss"] == pytest.approx(full["val_loss"], rel=1e-4)
    iters = [r["iter"] for r in read_jsonl(str(b / "metrics.jsonl")) if r["kind"] == "train"]
    assert iters == list(range(1, 21))


class _Crash(Exception):
    pass


class _CrashAt:
    def __init__(self, it):
        self.it = it

    def after_step(self, it):
        if it == self.it:
            raise _Crash(f"crash at {it}")


class _PoisonAfter:
    """Writes NaN into the weights after iteration 3, as a diverging run would."""

    def __init__(self, model):
        self.model = model

    def after_step(self, it):
        if it == 3:
            with torch.no_grad():
                self.model.out.weight.fill_(float("nan"))


def test_nan_loss_is_a_training_failure(tmp_path):
    t = _trainer(tmp_path, 20)
    t.hooks.append(_PoisonAfter(t.raw_model))
    with pytest.raises(TrainingFailure) as e:
        t.fit()
    assert e.value.reason == "nan_loss" and e.value.iteration == 4


def test_ddp_two_gloo_processes_agree(tmp_path):
    out = tmp_path / "ddp"
    env = dict(
        os.environ,
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        os.path.join(ROOT, "experiments", "ddp_check.py"),
        "--out",
        str(out),
        "--iters",
        "12",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((out / "rank0.json").read_text())
    r1 = json.loads((out / "rank1.json").read_text())
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["checksum"] == pytest.approx(r1["checksum"], rel=1e-9)
    assert r0["val_loss"] == pytest.approx(r1["val_loss"], rel=1e-6)  # averaged over ranks
    assert r0["final_train_loss"] < r0["first_loss"]
    # Effective batch counts both ranks: 12 iters x 8 x 2 accum x 32 tokens x 2 ranks.
    assert r0["tokens"] == 12 * 8 * 2 * 32 * 2
    recs = read_jsonl(str(out / "metrics.jsonl"))
    assert len([r for r in recs if r["kind"] == "train"]) == 12  # rank 0 alone writes


def test_lr_follows_the_optimizers_restarts():
    cfg = TrainConfig(max_iters=100, lr=1.0, min_lr=0.0, warmup_iters=0)
    assert lr_at(50, cfg, (50, 10)) < 0.1 * lr_at(50, cfg)
    assert lr_at(60, cfg, (50, 10)) == lr_at(60, cfg)
