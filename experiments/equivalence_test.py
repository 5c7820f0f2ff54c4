"""Training equivalences the trainer promises, on a BigramLM on the CPU.

- `grad_accum=k` with micro-batch b gives the same loss, gradients and
  parameters as one batch of k x b;
- two gloo ranks with batch b each give the same parameters and the same
  reported train and eval losses as one process on the combined batch 2 x b.

Both sides see exactly the same rows: `PoolBatches` hands out consecutive
slices of a fixed pool, so the k micro-batches (or the ranks' shares) of one
iteration concatenate to the one big batch. SGD is used on purpose: Adam is
nearly invariant to the gradient's scale and would hide a missing division.
The DDP ranks are forked children of the test process, meeting through a
file:// rendezvous in the test's temp dir. A rank that is not done after
RANK_LIMIT_S writes every thread's stack to rank<r>.err and exits, so a hang
fails the test with where it hung, inside Bazel's 60 s for a small test.
"""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import os
import traceback

import pytest
import torch
import torch.distributed as dist

from experiments.bigram import BigramLM
from experiments.distributed import DistInfo
from experiments.trainer import TrainConfig, Trainer

RANK_LIMIT_S = 40  # a rank takes about 2 s; Bazel kills a small test at 60 s

VOCAB, SEQ, ITERS, EVAL_ITERS = 64, 8, 3, 2


def tiny_model():
    torch.manual_seed(0)  # the same initial weights in every process
    return BigramLM(VOCAB, dim=16)


class PoolBatches:
    """get_batch over fixed pools: call c of rank r gets rows (c W + r) b ... + b.

    Calls are counted per generator: the trainer's own generator runs through
    the whole fit, and each evaluation makes fresh ones, so every evaluation
    sees the same rows. With W = 1 and batch W b a single process gets the
    concatenation of what the W ranks get at the same call.
    """

    def __init__(self, batch, rank=0, world=1):
        self.batch, self.rank, self.world = batch, rank, world
        g = torch.Generator().manual_seed(1234)
        rows = 2 * 64
        self.pools = {
            split: torch.randint(0, VOCAB, (rows, SEQ + 1), generator=g)
            for split in ("train", "val")
        }
        self.gen, self.calls = None, 0

    def __call__(self, split, gen):
        if gen is not self.gen:
            self.gen, self.calls = gen, 0  # holding gen keeps its id from being reused
        start = (self.calls * self.world + self.rank) * self.batch
        self.calls += 1
        rows = self.pools[split][start : start + self.batch]
        assert len(rows) == self.batch, "pool too small for this test"
        return rows[:, :-1], rows[:, 1:]


class GradRecorder:
    """Trainer hook: the gradients after backward, before clipping and the step."""

    def __init__(self, model):
        self.model, self.grads = model, []

    def after_backward(self, it):
        self.grads.append({n: p.grad.clone() for n, p in self.model.named_parameters()})


def make_trainer(batch, grad_accum, rank=0, world=1, dist_info=None):
    model = tiny_model()
    cfg = TrainConfig(
        max_iters=ITERS,
        batch_size=batch,
        grad_accum=grad_accum,
        lr=0.5,
        min_lr=0.05,
        warmup_iters=1,
        eval_interval=0,
        eval_iters=EVAL_ITERS,
        progress=False,
        tokens_per_sample=SEQ,
    )
    trainer = Trainer(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9),
        get_batch=PoolBatches(batch, rank, world),
        cfg=cfg,
        dist_info=dist_info or DistInfo(),
        log=lambda m: None,
    )
    return trainer, model


def summary(res):
    return {k: res[k] for k in ("first_loss", "final_train_loss", "val_loss", "tokens")}


def test_grad_accum_matches_one_big_batch():
    k, b = 4, 2
    big, big_model = make_trainer(batch=k * b, grad_accum=1)
    acc, acc_model = make_trainer(batch=b, grad_accum=k)
    big_grads, acc_grads = GradRecorder(big_model), GradRecorder(acc_model)
    big.hooks.append(big_grads)
    acc.hooks.append(acc_grads)
    r_big, r_acc = big.fit(), acc.fit()
    for g_big, g_acc in zip(big_grads.grads, acc_grads.grads, strict=True):
        for name, grad in g_big.items():
            torch.testing.assert_close(
                g_acc[name], grad, atol=1e-6, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}"
            )
    acc_state = acc_model.state_dict()
    for name, p_big in big_model.state_dict().items():
        torch.testing.assert_close(
            acc_state[name], p_big, atol=1e-6, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}"
        )
    assert r_acc["first_loss"] == pytest.approx(r_big["first_loss"], rel=1e-6)
    assert r_acc["final_train_loss"] == pytest.approx(r_big["final_train_loss"], rel=1e-6)
    # (Evaluation draws batch_size rows per batch, so its losses differ here by design.)


def _rank(rank, world, batch, grad_accum, out):
    """One DDP rank (a forked child): train, then write its parameters and losses.

    Forked, not spawned: the child inherits the imported torch and modules, so a
    rank starts in milliseconds instead of seconds. Any failure is written to
    rank<r>.err for the test to show.
    """
    hang = open(os.path.join(out, f"rank{rank}.err"), "w")
    faulthandler.dump_traceback_later(RANK_LIMIT_S, exit=True, file=hang)
    try:
        torch.set_num_threads(1)  # no OpenMP pool inherited from the parent
        dist.init_process_group(
            "gloo",
            init_method="file://" + os.path.join(out, "rendezvous"),
            rank=rank,
            world_size=world,
        )
        info = DistInfo(rank=rank, local_rank=rank, world_size=world)
        trainer, model = make_trainer(batch, grad_accum, rank, world, info)
        res = trainer.fit()
        torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump(summary(res), f)
        dist.destroy_process_group()
    except BaseException:
        hang.write(traceback.format_exc())
        raise
    finally:
        faulthandler.cancel_dump_traceback_later()
        hang.close()


def _ends(report: str, n: int = 3000) -> str:
    """A rank's report cut to its ends: a stack dump's innermost frames come first,
    a traceback's last."""
    return report if len(report) <= 2 * n else report[:n] + "\n...\n" + report[-n:]


def test_ddp_two_ranks_match_one_process_on_the_combined_batch(tmp_path):
    world, b, k = 2, 2, 2
    # Made before the fork, so the ranks inherit what building it imports.
    one, one_model = make_trainer(batch=world * b, grad_accum=k)
    fork = multiprocessing.get_context("fork")
    procs = [fork.Process(target=_rank, args=(r, world, b, k, str(tmp_path))) for r in range(world)]
    for p in procs:
        p.start()
    expected = summary(one.fit())  # the single process runs while the ranks do
    for r, p in enumerate(procs):
        p.join(timeout=RANK_LIMIT_S + 5)
        if p.is_alive():
            p.kill()
        err = tmp_path / f"rank{r}.err"
        assert p.exitcode == 0, f"rank {r} exit {p.exitcode}:\n" + (
            _ends(err.read_text()) if err.exists() else ""
        )
    for r in range(world):
        state = torch.load(tmp_path / f"rank{r}.pt")
        for name, p in one_model.state_dict().items():
            torch.testing.assert_close(
                state[name], p, atol=1e-6, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}"
            )
        got = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert got["tokens"] == expected["tokens"]
        for key in ("first_loss", "final_train_loss", "val_loss"):
            assert got[key] == pytest.approx(expected[key], rel=1e-6), (r, key)
