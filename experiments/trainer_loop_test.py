"""The trainer's loop, records and checkpoints on a 5-weight linear model: fast.

experiments/trainer_test.py trains a real model on Shakespeare; these tests
pin down what its docstring promises and those runs do not look at: which
iterations are logged and evaluated and what the records hold, the learning
rate each step uses, the returned summary, the time budget, which failures
become TrainingFailure, what a checkpoint holds and what a resume keeps,
that only rank 0 writes, and that a stop request checkpoints first. The
mutation run (//tools:mutation) showed these untested. The GPU loop's control
flow (losses read once per record, NaN found there, a stop request read
before its checkpoint) runs here with a host clock standing in for CUDA
events, and the telemetry sampler's means reach the records. The model and
its batches are experiments/testing_models.py's Linear and Batches.
"""

import math
import os
import statistics
import time
import types

import pytest
import torch

from experiments import telemetry
from experiments.distributed import DistInfo
from experiments.results import read_jsonl
from experiments.testing_models import Batches, Linear
from experiments.trainer import (
    TrainConfig,
    Trainer,
    TrainingFailure,
    TrainingInterrupted,
    lr_at,
)


class Tracker:
    def __init__(self):
        self.logged = []

    def log(self, values, step):
        self.logged.append((step, values))


class Recorder:
    """A hook: the lr and gradients at after_backward, its own metric and state."""

    def __init__(self, trainer=None):
        self.trainer, self.seen, self.steps, self.state = trainer, [], [], {"n": 0}

    def after_backward(self, it):
        opt = self.trainer.optimizer
        grads = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in self.params()]
        self.seen.append((it, opt.param_groups[0]["lr"], all(grads)))

    def after_step(self, it):
        self.steps.append((it, [p.grad for p in self.params()]))
        self.state["n"] += 1

    def params(self):
        return list(self.trainer.raw_model.parameters())

    def metrics(self):
        return {"hook_metric": self.state["n"]}

    def state_dict(self):
        return dict(self.state)

    def load_state_dict(self, state):
        self.state = dict(state)


def make(tmp_path=None, hooks=(), dist_info=None, batches=None, model=None, cls=Trainer, **cfg):
    model = model or Linear()
    defaults = dict(
        max_iters=5,
        batch_size=4,
        lr=0.1,
        min_lr=0.01,
        warmup_iters=2,
        eval_interval=2,
        eval_iters=3,
        progress=False,
        tokens_per_sample=3,
    )
    config = TrainConfig(**{**defaults, **cfg})
    trainer = cls(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=config.lr),
        get_batch=batches or Batches(config.batch_size),
        cfg=config,
        metrics_path=str(tmp_path / "metrics.jsonl") if tmp_path else None,
        checkpoint_path=str(tmp_path / "ckpt.pt") if tmp_path else None,
        hooks=list(hooks),
        dist_info=dist_info or DistInfo(),
        log=lambda m: None,
    )
    for h in trainer.hooks:
        if isinstance(h, Recorder):
            h.trainer = trainer
    return trainer


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("dtype", "float16", "dtype 'float16': accepted: float32, bfloat16"),
        ("max_iters", 0, "max_iters must be >= 1, got 0"),
        ("batch_size", 0, "batch_size must be >= 1, got 0"),
        ("grad_accum", 0, "grad_accum must be >= 1, got 0"),
        ("eval_iters", 0, "eval_iters must be >= 1, got 0"),
    ],
)
def test_config_rejects_bad_values_naming_them(field, value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        TrainConfig(**{field: value})
    TrainConfig(**{field: {"dtype": "bfloat16"}.get(field, 1)})  # the edge is accepted


def test_config_to_dict_is_json_ready():
    d = TrainConfig(betas=(0.8, 0.9), max_iters=7).to_dict()
    assert d["betas"] == [0.8, 0.9] and d["max_iters"] == 7 and d["lr_decay_iters"] is None


class LossAttribute(Linear):
    """Returns an object with .loss instead of a tuple."""

    def forward(self, x, y):
        pred, loss = super().forward(x, y)
        return types.SimpleNamespace(logits=pred, loss=loss)


def test_a_model_may_return_an_object_with_a_loss_attribute():
    tuple_run = make(eval_interval=0).fit()
    attr_run = make(eval_interval=0, model=LossAttribute()).fit()
    assert attr_run["val_loss"] == tuple_run["val_loss"]
    assert attr_run["final_train_loss"] == tuple_run["final_train_loss"]

    class Bare(Linear):
        def forward(self, x, y):
            return super().forward(x, y)[1]

    with pytest.raises(TypeError, match="must return"):
        make(model=Bare()).fit()


def test_records_evals_lr_and_summary(tmp_path):
    tracker = Tracker()
    rec = Recorder()
    t = make(tmp_path, hooks=[rec], log_interval=2, grad_accum=2)
    t.tracker = tracker
    res = t.fit()
    recs = read_jsonl(str(tmp_path / "metrics.jsonl"))
    train = [r for r in recs if r["kind"] == "train"]
    evals = [r for r in recs if r["kind"] == "eval"]
    # Logged every log_interval iterations and at the last one; evals every
    # eval_interval iterations (not at 0) and at the end.
    assert [r["iter"] for r in train] == [2, 4, 5]
    assert [r["iter"] for r in evals] == [2, 4, 5]
    per_iter = 4 * 2 * 3  # batch x grad_accum x tokens_per_sample
    for r in train:
        assert r["step"] == "train" and r["tokens"] == r["iter"] * per_iter
        assert r["lr"] == pytest.approx(lr_at(r["iter"] - 1, t.cfg))
        assert r["ppl"] == pytest.approx(math.exp(r["loss"]))
        assert r["hook_metric"] == r["iter"]
        assert r["tokens_per_s"] > 0 and r["elapsed_s"] > 0 and r["iter_s"] > 0
        assert r["iter_ms"] == pytest.approx(1000 * r["iter_s"])
        assert r["iter_ms"] >= r["fwd_ms"] + r["bwd_ms"] + r["opt_ms"] - 1e-6
    # The optimizer steps with the scheduled lr, on gradients of the whole batch.
    assert [(it, lr) for it, lr, _ in rec.seen] == [(i, lr_at(i, t.cfg)) for i in range(5)]
    assert all(g for _, _, g in rec.seen)
    assert all(g is None for _, grads in rec.steps for g in grads)  # zeroed after the step
    best = math.inf
    for r in evals:
        best = min(best, r["val_loss"])
        assert r["best_val_loss"] == best and r["step"] == "train"
        assert r["val_ppl"] == pytest.approx(math.exp(r["val_loss"]))
        assert r["train_loss_eval"] < r["val_loss"]  # val targets are shifted by 1
    assert res["evals"] == evals
    assert res["iters"] == 5 and res["stop_reason"] == "max_iters"
    assert res["tokens"] == 5 * per_iter
    assert res["val_loss"] == evals[-1]["val_loss"] and res["val_ppl"] == evals[-1]["val_ppl"]
    assert res["best_val_loss"] == min(r["val_loss"] for r in evals)
    assert res["compiled"] is False and res["step"] == "train" and res["wall_s"] > 0
    assert res["tokens_per_s_median"] > 0
    # The tracker gets the logged train records' numbers and every eval, by iteration.
    steps = [s for s, v in tracker.logged if "train/loss" in v]
    assert steps == [2, 4, 5]
    logged = dict((s, v) for s, v in tracker.logged if "train/loss" in v)
    assert logged[4]["train/loss"] == train[1]["loss"] and logged[4]["train/iter"] == 4
    assert "train/step" not in logged[4]  # only numbers
    val = [(s, v) for s, v in tracker.logged if "train/val_loss" in v]
    assert [s for s, _ in val] == [2, 4, 5]
    assert val[-1][1] == {"train/val_loss": res["val_loss"], "train/val_ppl": res["val_ppl"]}


def test_first_and_final_train_loss(tmp_path):
    t = make(tmp_path, max_iters=14, eval_interval=0)
    res = t.fit()
    train = [r for r in read_jsonl(str(tmp_path / "metrics.jsonl")) if r["kind"] == "train"]
    losses = [r["loss"] for r in train]
    assert len(losses) == 14
    assert res["first_loss"] == losses[0]
    assert res["final_train_loss"] == pytest.approx(statistics.fmean(losses[-10:]))
    assert res["tokens_per_s_median"] == statistics.median(r["tokens_per_s"] for r in train)


def test_evaluation_uses_the_same_batches_each_time_and_its_own_generator():
    batches = Batches()
    t = make(batches=batches, eval_iters=3)
    train_state = t.gen.get_state()
    a, b = t.evaluate(), t.evaluate()
    assert a == b and batches.calls == {"train": 3 * 2, "val": 3 * 2}
    assert torch.equal(t.gen.get_state(), train_state)  # training draws are untouched
    assert t.model.training  # back in training mode
    # The value is the mean over eval_iters batches drawn from seed + 7.
    g = torch.Generator().manual_seed(t.cfg.seed + 7)
    with torch.no_grad():
        expected = statistics.fmean(float(t.model(*batches("val", g))[1]) for _ in range(3))
    assert a["val"] == pytest.approx(expected, rel=1e-6)
    # Another rank draws other evaluation batches (and other training batches).
    other = make(dist_info=DistInfo(rank=1, world_size=1))
    assert other.evaluate()["val"] != pytest.approx(a["val"], rel=1e-6)
    assert not torch.equal(other.gen.get_state(), train_state)


def test_time_budget_stops_before_the_first_iteration(tmp_path):
    res = make(tmp_path, time_budget_s=0.0).fit()
    assert res["stop_reason"] == "time_budget" and res["iters"] == 0 and res["tokens"] == 0
    assert res["first_loss"] is None and res["final_train_loss"] is None
    assert res["tokens_per_s_median"] is None
    assert math.isfinite(res["val_loss"])  # the final evaluation still runs
    res = make(tmp_path, time_budget_s=3600.0).fit()
    assert res["stop_reason"] == "max_iters" and res["iters"] == 5


class Failing(Linear):
    def __init__(self, error, at_call):
        super().__init__()
        self.error, self.at_call, self.calls = error, at_call, 0

    def forward(self, x, y):
        self.calls += 1
        if self.calls == self.at_call:
            raise self.error
        return super().forward(x, y)


@pytest.mark.parametrize(
    "error",
    [RuntimeError("CUDA out of memory. Tried to allocate"), torch.OutOfMemoryError("oom")],
)
def test_out_of_memory_is_a_training_failure(error):
    with pytest.raises(TrainingFailure) as e:
        make(eval_interval=0, model=Failing(error, at_call=3)).fit()
    assert e.value.reason == "oom" and e.value.iteration == 2
    assert str(e.value) == f"out of memory at iter 2: {error}"


def test_other_errors_propagate_as_they_are():
    with pytest.raises(RuntimeError, match="^shape mismatch$"):
        make(eval_interval=0, model=Failing(RuntimeError("shape mismatch"), at_call=2)).fit()


def test_nan_validation_loss_is_a_training_failure():
    class NanVal(Linear):
        def forward(self, x, y):
            pred, loss = super().forward(x, y)
            return pred, loss if self.training else loss * float("nan")

    t = make(eval_interval=0, max_iters=2, model=NanVal())
    with pytest.raises(TrainingFailure, match="^validation loss is nan at iter 2$") as e:
        t.fit()
    assert e.value.reason == "nan_loss" and e.value.iteration == 2


def test_checkpoints_hold_the_state_and_resume_keeps_records_before_them(tmp_path):
    rec = Recorder()
    t = make(tmp_path, hooks=[rec], checkpoint_interval=2, eval_interval=2)
    t.fit()
    state = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    # Saved at 2 and 4, not at max_iters (the step is done then).
    assert state["iter"] == 4 and state["config"] == t.cfg.to_dict()
    assert state["hooks"] == [{"n": 4}] and state["best_val"] == min(
        r["val_loss"]
        for r in read_jsonl(str(tmp_path / "metrics.jsonl"))
        if r["kind"] == "eval" and r["iter"] < 4  # the eval at 4 comes after the save
    )
    assert state["elapsed"] > 0 and not os.path.exists(str(tmp_path / "ckpt.pt") + ".tmp")
    # A new trainer resumes at 4: the hook's state, weights and records up to
    # iteration 4's train record come back; the eval at 4 is redone.
    rec2 = Recorder()
    t2 = make(tmp_path, hooks=[rec2], checkpoint_interval=2, eval_interval=2)
    assert t2.maybe_resume() is True
    assert t2.start_iter == 4 and rec2.state == {"n": 4} and t2.best_val == state["best_val"]
    assert t2.elapsed_before == state["elapsed"]
    for name, p in t2.raw_model.state_dict().items():
        assert torch.equal(p, state["model"][name])
    kept = read_jsonl(str(tmp_path / "metrics.jsonl"))
    assert [(r["kind"], r["iter"]) for r in kept] == [
        ("train", 1),
        ("train", 2),
        ("eval", 2),
        ("train", 3),
        ("train", 4),
    ]
    assert [r["iter"] for r in t2.resumed_train] == [1, 2, 3, 4]


class Killed(BaseException):
    """A kill: not an Exception, so the trainer's OOM handling does not see it."""


class CrashAfter:
    def __init__(self, it):
        self.it = it

    def after_step(self, it):
        if it == self.it:
            raise Killed(f"killed after iteration {it + 1}")


def test_a_resumed_run_reports_what_an_uninterrupted_one_does(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    full = make(a, max_iters=12).fit()
    with pytest.raises(Killed):
        make(b, max_iters=12, checkpoint_interval=4, hooks=[CrashAfter(9)]).fit()
    res = make(b, max_iters=12, checkpoint_interval=4).fit()
    for key in ("first_loss", "final_train_loss", "val_loss", "tokens", "iters"):
        assert res[key] == pytest.approx(full[key], rel=1e-6), key
    # The throughput median counts the iterations before the resume too.
    train = [r for r in read_jsonl(str(b / "metrics.jsonl")) if r["kind"] == "train"]
    assert res["tokens_per_s_median"] == statistics.median(r["tokens_per_s"] for r in train)
    assert [r["loss"] for r in read_jsonl(str(b / "metrics.jsonl")) if r["kind"] == "train"] == [
        pytest.approx(r["loss"], rel=1e-6)
        for r in read_jsonl(str(a / "metrics.jsonl"))
        if r["kind"] == "train"
    ]


def test_without_a_checkpoint_a_step_starts_over(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"iter": 9, "kind": "train", "loss": 1.0}\n')
    t = make(tmp_path, max_iters=2)
    assert t.maybe_resume() is False and not (tmp_path / "metrics.jsonl").exists()
    t.fit()
    assert [r["iter"] for r in read_jsonl(str(tmp_path / "metrics.jsonl"))] == [1, 2, 2]


def test_only_rank_zero_writes(tmp_path):
    tracker = Tracker()
    t = make(tmp_path, dist_info=DistInfo(rank=1, world_size=1), checkpoint_interval=2)
    t.tracker = tracker
    t.fit()
    assert os.listdir(tmp_path) == [] and tracker.logged == []


def test_the_progress_bar_counts_iterations_from_a_resume(tmp_path, capfd):
    run = dict(max_iters=4, checkpoint_interval=2, progress=True)
    with pytest.raises(Killed):
        make(tmp_path, hooks=[CrashAfter(2)], **run).fit()
    capfd.readouterr()
    make(tmp_path, **run).fit()
    err = capfd.readouterr().err
    # tqdm on stderr, named after the step, from the checkpoint's iteration to max_iters.
    assert err.startswith("\rtrain:  50%|") and " 2/4 " in err and " 4/4 " in err
    assert " 0/4 " not in err and "loss=" in err


def test_a_stop_request_checkpoints_and_a_resume_finishes_as_if_never_stopped(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    full = make(a, max_iters=6).fit()
    asked = []
    t = make(b, max_iters=6)
    t.should_stop = lambda: asked.append(1) or len(asked) == 3  # SIGTERM during iteration 3
    with pytest.raises(TrainingInterrupted) as e:
        t.fit()
    assert e.value.iteration == 3 and str(e.value) == "interrupted at iter 3; checkpoint saved"
    assert torch.load(b / "ckpt.pt", weights_only=False)["iter"] == 3
    res = make(b, max_iters=6).fit()
    for key in ("first_loss", "final_train_loss", "val_loss", "tokens", "iters"):
        assert res[key] == pytest.approx(full[key], rel=1e-6), key
    iters = [r["iter"] for r in read_jsonl(str(b / "metrics.jsonl")) if r["kind"] == "train"]
    assert iters == [1, 2, 3, 4, 5, 6]
    # A request during the last iteration lets the run finish: nothing is left to resume.
    t = make(tmp_path / "c", max_iters=2)
    t.should_stop = lambda: True
    with pytest.raises(TrainingInterrupted):
        t.fit()
    t = make(tmp_path / "d", max_iters=1)
    t.should_stop = lambda: True
    assert t.fit()["iters"] == 1


class HostClock:
    """The GPU loop's clock on the CPU: perf_counter marks; counts the host reads."""

    def __init__(self):
        self.reads = []

    def mark(self):
        return time.perf_counter()

    def ms(self, start, end):
        return 1000 * (end - start)

    def read(self, values):
        self.reads.append(len(values))
        return values.tolist()


class PendingTrainer(Trainer):
    """A Trainer that takes the GPU path (PendingIter, one read per record) on the CPU."""

    def _clock(self):
        if not hasattr(self, "host_clock"):
            self.host_clock = HostClock()
        return self.host_clock


def train_records(path):
    return [r for r in read_jsonl(str(path / "metrics.jsonl")) if r["kind"] == "train"]


@pytest.mark.parametrize("eval_interval, reads", [(0, [3, 3, 1]), (2, [2, 1, 1, 2, 1])])
def test_the_gpu_loop_reads_once_per_record_and_logs_what_the_cpu_loop_does(
    tmp_path, eval_interval, reads
):
    run = dict(max_iters=7, log_interval=3, eval_interval=eval_interval)
    cpu, gpu = tmp_path / "cpu", tmp_path / "gpu"
    cpu.mkdir(), gpu.mkdir()
    want = make(cpu, **run).fit()
    trainer = make(gpu, cls=PendingTrainer, **run)
    got = trainer.fit()
    assert trainer.host_clock.reads == reads  # one read per due record, of every pending loss
    a, b = train_records(cpu), train_records(gpu)
    assert [r["iter"] for r in b] == [3, 6, 7]
    assert [r["loss"] for r in b] == [r["loss"] for r in a]
    assert [r["lr"] for r in b] == [r["lr"] for r in a]
    for r in b:
        assert r["iter_ms"] >= r["fwd_ms"] + r["bwd_ms"] + r["opt_ms"] - 1e-6 > 0
        assert r["tokens_per_s"] == pytest.approx(4 * 3 / r["iter_s"])
    for key in ("first_loss", "final_train_loss", "val_loss", "iters"):
        assert got[key] == want[key], key
    assert len(trainer.host_clock.reads) == len(reads) and got["tokens_per_s_median"] > 0


class NanAfter:
    """Batches whose targets turn NaN from the n-th training draw on."""

    def __init__(self, n):
        self.batches, self.n, self.draws = Batches(), n, 0

    def __call__(self, split, gen):
        x, y = self.batches(split, gen)
        if split == "train":
            self.draws += 1
            if self.draws > self.n:
                y = torch.full_like(y, float("nan"))
        return x, y


def test_the_gpu_loop_finds_a_nan_loss_at_the_read_and_names_its_iteration(tmp_path):
    run = dict(max_iters=9, log_interval=3, eval_interval=0)
    t = make(tmp_path, cls=PendingTrainer, batches=NanAfter(4), **run)
    with pytest.raises(TrainingFailure) as err:
        t.fit()
    assert err.value.reason == "nan_loss" and err.value.iteration == 4
    assert str(err.value) == "training loss is nan at iter 4"
    assert t.host_clock.reads == [3, 3]  # found at the read after iteration 6, not before
    assert [r["iter"] for r in train_records(tmp_path)] == [3]


def test_the_samplers_means_join_every_logged_record_and_the_tracker(tmp_path):
    tracker = Tracker()
    sampler = telemetry.Sampler(telemetry.CpuBackend(), interval_s=0.01)
    t = make(tmp_path, max_iters=4, log_interval=2)
    t.tracker, t.sampler = tracker, sampler
    t.fit()
    names = {"cpu/compute_util_avg", "cpu/memory_util_avg", "cpu/memory_used_avg_gb"}
    train = train_records(tmp_path)
    assert [r["iter"] for r in train] == [2, 4]
    for r in train:
        assert names <= set(r) and r["cpu/memory_used_avg_gb"] > 0
    logged = [v for _, v in tracker.logged if "train/loss" in v]
    assert all(f"train/{n}" in v for v in logged for n in names)
    assert sampler.thread is None  # stopped when fit() returns


def test_on_the_gpu_loop_a_stop_request_reads_the_device_before_its_checkpoint(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    run = dict(max_iters=6, log_interval=3, eval_interval=0, checkpoint_interval=0)
    full = make(a, cls=PendingTrainer, **run).fit()
    asked = []
    t = make(b, cls=PendingTrainer, **run)
    t.should_stop = lambda: asked.append(1) or len(asked) == 2  # inside the first interval
    with pytest.raises(TrainingInterrupted) as e:
        t.fit()
    assert e.value.iteration == 2 and t.host_clock.reads == [2]  # read at once, not at iter 3
    assert torch.load(b / "ckpt.pt", weights_only=False)["iter"] == 2
    res = make(b, cls=PendingTrainer, **run).fit()
    for key in ("val_loss", "tokens", "iters"):
        assert res[key] == pytest.approx(full[key], rel=1e-6), key
    want = [(r["iter"], r["loss"]) for r in train_records(a)]
    got = [(r["iter"], r["loss"]) for r in train_records(b)]
    assert [i for i, _ in got] == [3, 6]
    assert [loss for _, loss in got] == pytest.approx([loss for _, loss in want], rel=1e-6)
