"""One training loop for every experiment: budgets, schedule, eval, checkpoints, DDP.

The model follows nanoGPT's convention: `model(x, targets)` returns
`(logits, loss)` (an object with `.loss` works too). Data comes from a
`get_batch(split, generator) -> (x, y)` callable, so the same loop trains the
GPT-2 zoo on token memmaps and the vision models on image tensors.

What it does per iteration: `grad_accum` micro-batches under bf16 autocast
on a GPU (fp32 on the CPU), then `optimizer_step` (pruning/optimizers.py):
the optimizer's `before_clip()` hook on the raw gradients if it has one
(AdamWSPAM's spike clipping and spike test, pruning/spam.py), the global
gradient-norm clip at `grad_clip`, and the optimizer step; then the hooks
(pruning masks, sparsity figures). The trainer alone sets the learning rate:
a linear warmup followed by a cosine decay to `min_lr` (pruning/schedule.py
`lr_at`), times the warmup after each moment reset of an optimizer with
`lr_restarts`. It stops at `max_iters` or when `time_budget_s` of wall time
is spent, evaluates every `eval_interval` iterations on `eval_iters`
batches, checkpoints every `checkpoint_interval` iterations, and writes one
JSON record per logged iteration and per eval to the step's metrics.jsonl. A
NaN/inf loss or an out-of-memory error raises TrainingFailure with the
reason, which the experiment records.

On a GPU the loop does not wait for the device: each iteration's loss stays
on the device and its timings are CUDA events (`PendingIter`); the host
reads them all at once, in one transfer, when a record is due (a log,
eval or checkpoint iteration, the last one, a stop request), and checks for
NaN there. On
the CPU every iteration is read as it ends. An optional telemetry sampler
(experiments/telemetry.py) runs beside the loop and its means over each log
interval join that interval's record.

Multi-GPU: under `torchrun` (WORLD_SIZE > 1) the model is wrapped in
DistributedDataParallel (NCCL on GPUs, gloo on the CPU), each rank draws its
own batches, eval losses are averaged over ranks, and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from experiments.distributed import DistInfo
from experiments.results import JsonlWriter, atomic_write, repair_jsonl
from experiments.train_config import TrainConfig
from pruning import schedule
from pruning.optimizers import optimizer_step


class TrainingFailure(RuntimeError):
    """A step that cannot go on; `reason` is one of nan_loss, oom, error."""

    def __init__(self, reason: str, message: str, iteration: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.iteration = iteration


class TrainingInterrupted(RuntimeError):
    """`should_stop` asked the loop to stop; a checkpoint at `iteration` was saved first."""

    def __init__(self, iteration: int):
        super().__init__(f"interrupted at iter {iteration}; checkpoint saved")
        self.iteration = iteration


def lr_at(it: int, cfg: TrainConfig, restarts: tuple[int, int] | None = None) -> float:
    """Linear warmup to cfg.lr, then cosine decay to cfg.min_lr at lr_decay_iters.

    `restarts` is an optimizer's `lr_restarts` (interval, warmup), or None.
    """
    decay = cfg.lr_decay_iters or cfg.max_iters
    return schedule.lr_at(it, cfg.lr, cfg.min_lr, cfg.warmup_iters, decay, restarts)


def _loss_of(out) -> torch.Tensor:
    if isinstance(out, tuple):
        return out[1]
    if hasattr(out, "loss"):
        return out.loss
    raise TypeError("model must return (logits, loss) or an object with .loss")


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


class CudaClock:
    """Timing marks on the current CUDA stream; `read` is the loop's one host transfer."""

    @staticmethod
    def mark():
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    @staticmethod
    def ms(start, end) -> float:
        return start.elapsed_time(end)  # valid once `read` has waited for the stream

    @staticmethod
    def read(values: torch.Tensor) -> list[float]:
        return values.tolist()


@dataclass
class PendingIter:
    """A GPU iteration the host has not read: its loss on the device, its timing marks."""

    loss: torch.Tensor
    start: object
    micro: list  # (before forward, after forward, after backward) per micro-batch
    opt: object
    end: object

    def record(self, loss: float, ms) -> dict:
        """The iteration's record once `loss` is read; `ms(a, b)` is the clock's interval."""
        iter_ms = ms(self.start, self.end)
        return {
            "loss": loss,
            "iter_s": iter_ms / 1000,
            "iter_ms": iter_ms,
            "fwd_ms": sum(ms(a, b) for a, b, _ in self.micro),
            "bwd_ms": sum(ms(b, c) for _, b, c in self.micro),
            "opt_ms": ms(self.opt, self.end),
        }


@dataclass
class _Tally:
    """What fit() keeps of the train records: every rate, the first loss, the last ten."""

    rates: list
    first_loss: float | None
    last_losses: list

    def add(self, index: int, rec: dict, tokens_per_iter: int) -> float:
        if self.first_loss is None and index == 0:
            self.first_loss = rec["loss"]
        self.last_losses = (self.last_losses + [rec["loss"]])[-10:]
        rate = tokens_per_iter / rec["iter_s"]
        self.rates.append(rate)
        return rate


@dataclass
class Trainer:
    """Trains `model` with `optimizer` on batches from `get_batch`.

    hooks: objects with any of `after_backward(it)`, `after_step(it)`,
    `metrics() -> dict` (merged into each logged record), `state_dict()` /
    `load_state_dict()` (saved in checkpoints). `should_stop`, checked after
    every iteration, makes the loop read what the device holds, save a
    checkpoint and raise TrainingInterrupted (experiments/run_step.py sets it
    on SIGTERM). sampler: a telemetry.Sampler (or None): started and stopped
    by fit() on the writing rank, its `means()` merged into each logged record.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    get_batch: Callable[[str, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    cfg: TrainConfig
    metrics_path: str | None = None
    checkpoint_path: str | None = None
    hooks: list = field(default_factory=list)
    tracker: object | None = None
    sampler: object | None = None
    step_name: str = "train"
    dist_info: DistInfo = field(default_factory=DistInfo)
    log: Callable[[str], None] = print
    should_stop: Callable[[], bool] | None = None

    def __post_init__(self):
        self.device = torch.device(self.cfg.device)
        self.raw_model = self.model
        self.model.to(self.device)
        self.compiled = False
        if self.cfg.compile:
            self.model = torch.compile(self.model)
            self.compiled = True
        if self.dist_info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(self.model, device_ids=ids)
        self.start_iter = 0
        self.resumed_train: list[dict] = []  # train records kept from before a resume
        self.best_val = float("inf")
        self.elapsed_before = 0.0
        seed = self.cfg.seed + 1000 * self.dist_info.rank
        self.gen = torch.Generator().manual_seed(seed)
        self.eval_gen_seed = self.cfg.seed + 7
        random.seed(seed)
        torch.manual_seed(seed)

    # -- precision -------------------------------------------------------
    def autocast(self):
        if self.device.type == "cuda" and self.cfg.dtype == "bfloat16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- checkpoints -----------------------------------------------------
    def save_checkpoint(self, it: int, elapsed: float) -> None:
        if not self.checkpoint_path or not self.dist_info.is_main:
            return
        state = {
            "iter": it,
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best_val": self.best_val,
            "elapsed": elapsed,
            "hooks": [h.state_dict() if hasattr(h, "state_dict") else None for h in self.hooks],
            "config": self.cfg.to_dict(),
        }
        atomic_write(self.checkpoint_path, lambda f: torch.save(state, f))

    def maybe_resume(self) -> bool:
        """Loads the checkpoint if there is one; drops metric records written after it."""
        if not self.checkpoint_path or not os.path.exists(self.checkpoint_path):
            if self.metrics_path and self.dist_info.is_main and os.path.exists(self.metrics_path):
                os.unlink(self.metrics_path)  # no checkpoint: the step starts over
                self.log(f"[{self.step_name}] no checkpoint yet, restarting step")
            return False
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.best_val = state["best_val"]
        self.elapsed_before = state["elapsed"]
        self.start_iter = state["iter"]
        for h, hs in zip(self.hooks, state.get("hooks", []), strict=False):
            if hs is not None and hasattr(h, "load_state_dict"):
                h.load_state_dict(hs)
        if self.metrics_path and self.dist_info.is_main:
            # Train records up to the checkpoint stay; the eval at the checkpoint's
            # iteration is redone (same batches, same weights, same numbers).
            start = self.start_iter
            kept = repair_jsonl(
                self.metrics_path,
                keep=lambda r: r.get("iter", 0) < start
                or (r.get("iter") == start and r.get("kind") == "train"),
            )
            self.resumed_train = [r for r in kept if r.get("kind") == "train"]
        self.log(f"[{self.step_name}] resumed from checkpoint at iter {self.start_iter}")
        return True

    # -- evaluation ------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Mean loss over eval_iters batches per split, the same batches every time."""
        self.model.eval()
        out = {}
        for split in ("train", "val"):
            g = torch.Generator().manual_seed(self.eval_gen_seed + self.dist_info.rank)
            losses = torch.zeros(self.cfg.eval_iters)
            for k in range(self.cfg.eval_iters):
                x, y = self.get_batch(split, g)
                with self.autocast():
                    losses[k] = _loss_of(self.model(x, y)).float().item()
            loss = losses.mean().to(self.device)
            if self.dist_info.enabled:  # gloo has no AVG: sum, then divide
                dist.all_reduce(loss, op=dist.ReduceOp.SUM)
                loss = loss / self.dist_info.world_size
            out[split] = loss.item()
        self.model.train()
        return out

    # -- the loop --------------------------------------------------------
    @property
    def tokens_per_iter(self) -> int:
        """Tokens one iteration trains on, over every rank and accumulation step."""
        cfg = self.cfg
        return cfg.batch_size * cfg.grad_accum * cfg.tokens_per_sample * self.dist_info.world_size

    def fit(self) -> dict:
        cfg, info = self.cfg, self.dist_info
        self.maybe_resume()
        writer = JsonlWriter(self.metrics_path) if (self.metrics_path and info.is_main) else None
        tokens_per_iter = self.tokens_per_iter
        bar = None
        if cfg.progress and info.is_main:
            from tqdm import tqdm

            bar = tqdm(
                total=cfg.max_iters,
                initial=self.start_iter,
                desc=self.step_name,
                unit="it",
                dynamic_ncols=True,
                mininterval=1.0,
            )
        prior = self.resumed_train
        tally = _Tally(
            rates=[r["tokens_per_s"] for r in prior if r.get("tokens_per_s")],
            first_loss=next((r["loss"] for r in prior if r.get("iter") == 1), None),
            last_losses=[r["loss"] for r in prior][-10:],
        )
        evals = []
        pending = []  # (iteration, lr, what _train_iter returned) not yet read
        sampler = self.sampler if writer else None
        t_start = time.time()
        it = self.start_iter
        stop_reason = "max_iters"
        self.model.train()
        try:
            if sampler:
                sampler.start()
            while it < cfg.max_iters:
                elapsed = self.elapsed_before + time.time() - t_start
                if cfg.time_budget_s is not None and elapsed >= cfg.time_budget_s:
                    stop_reason = "time_budget"
                    break
                if cfg.eval_interval and it % cfg.eval_interval == 0 and it > 0:
                    evals.append(self._eval_and_record(it, writer))
                lr = lr_at(it, cfg, getattr(self.optimizer, "lr_restarts", None))
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                out = self._train_iter(it)
                pending.append((it, lr, out))
                it += 1
                stop = self._stop_requested() and it < cfg.max_iters
                if isinstance(out, PendingIter) and not (stop or self._read_due(it)):
                    if bar:
                        bar.update(1)
                    continue
                for index, rec in self._read(pending):
                    rate = tally.add(index, rec, tokens_per_iter)
                pending = []
                elapsed = self.elapsed_before + time.time() - t_start
                if writer and (it % cfg.log_interval == 0 or it == cfg.max_iters):
                    for h in self.hooks:
                        if hasattr(h, "metrics"):
                            rec.update(h.metrics())
                    if sampler:
                        rec.update(sampler.means())
                    rec.update(
                        iter=it,
                        step=self.step_name,
                        kind="train",
                        tokens=it * tokens_per_iter,
                        tokens_per_s=rate,
                        elapsed_s=elapsed,
                        ppl=math.exp(min(rec["loss"], 50.0)),
                    )
                    writer.write(rec)
                    if self.tracker:
                        self.tracker.log(
                            {
                                f"{self.step_name}/{k}": v
                                for k, v in rec.items()
                                if isinstance(v, int | float)
                            },
                            step=it,
                        )
                if bar:
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{rate:,.0f}", refresh=False)
                    bar.update(1)
                if (
                    cfg.checkpoint_interval
                    and it % cfg.checkpoint_interval == 0
                    and it < cfg.max_iters
                ):
                    if writer:
                        writer.sync()
                    self.save_checkpoint(it, elapsed)
                if stop:
                    if writer:
                        writer.sync()
                    self.save_checkpoint(it, elapsed)
                    raise TrainingInterrupted(it)
            for index, rec in self._read(pending):  # left by a time budget
                tally.add(index, rec, tokens_per_iter)
            final = self._eval_and_record(it, writer)
            evals.append(final)
        except (TrainingFailure, TrainingInterrupted):
            raise
        except Exception as e:  # noqa: BLE001 - an OOM shows as several exception types
            if _is_oom(e):
                raise TrainingFailure("oom", f"out of memory at iter {it}: {e}", it) from e
            raise
        finally:
            if sampler:
                sampler.stop()
            if bar:
                bar.close()
            if writer:
                writer.close()
        wall = self.elapsed_before + time.time() - t_start
        return {
            "step": self.step_name,
            "iters": it,
            "stop_reason": stop_reason,
            "tokens": it * tokens_per_iter,
            "wall_s": wall,
            "tokens_per_s_median": statistics.median(tally.rates) if tally.rates else None,
            "first_loss": tally.first_loss,
            "final_train_loss": (
                statistics.fmean(tally.last_losses) if tally.last_losses else None
            ),
            "val_loss": final["val_loss"],
            "val_ppl": final["val_ppl"],
            "best_val_loss": self.best_val,
            "compiled": self.compiled,
            "evals": evals,
        }

    def _eval_and_record(self, it: int, writer) -> dict:
        losses = self.evaluate()
        self.best_val = min(self.best_val, losses["val"])
        rec = {
            "iter": it,
            "step": self.step_name,
            "kind": "eval",
            "tokens": it * self.tokens_per_iter,
            "train_loss_eval": losses["train"],
            "val_loss": losses["val"],
            "val_ppl": math.exp(min(losses["val"], 50.0)),
            "best_val_loss": self.best_val,
        }
        if writer:
            writer.write(rec)
        if self.tracker and self.dist_info.is_main:
            self.tracker.log(
                {
                    f"{self.step_name}/val_loss": rec["val_loss"],
                    f"{self.step_name}/val_ppl": rec["val_ppl"],
                },
                step=it,
            )
        if not math.isfinite(losses["val"]):
            raise TrainingFailure(
                "nan_loss", f"validation loss is {losses['val']} at iter {it}", it
            )
        return rec

    def _stop_requested(self) -> bool:
        return self.should_stop is not None and bool(self.should_stop())

    def _read_due(self, done: int) -> bool:
        """Whether the host reads the GPU after `done` iterations: a record is due then."""
        cfg = self.cfg
        return any(
            (
                done % cfg.log_interval == 0,
                done == cfg.max_iters,
                cfg.eval_interval and done % cfg.eval_interval == 0,
                cfg.checkpoint_interval and done % cfg.checkpoint_interval == 0,
            )
        )

    def _clock(self):
        """The GPU loop's clock, or None: on the CPU every iteration is read as it ends."""
        return CudaClock() if self.device.type == "cuda" else None

    def _read(self, pending: list) -> list[tuple[int, dict]]:
        """(iteration, record) of each pending iteration, with its lr; GPU ones in one read."""
        gpu = [out for _, _, out in pending if isinstance(out, PendingIter)]
        if gpu:
            clock = self._clock()
            losses = iter(clock.read(torch.stack([p.loss for p in gpu])))
        read = []
        for index, lr, out in pending:
            if isinstance(out, PendingIter):
                loss = next(losses)
                if not math.isfinite(loss):
                    raise TrainingFailure(
                        "nan_loss", f"training loss is {loss} at iter {index}", index
                    )
                out = out.record(loss, clock.ms)
            out["lr"] = lr
            read.append((index, out))
        return read

    def _train_iter(self, it: int) -> dict | PendingIter:
        clock = self._clock()
        if clock is not None:
            return self._train_iter_pending(it, clock)
        cfg = self.cfg
        t0 = time.perf_counter()
        fwd = bwd = 0.0
        total = 0.0
        for micro in range(cfg.grad_accum):
            x, y = self.get_batch("train", self.gen)
            last = micro == cfg.grad_accum - 1
            ctx = (
                self.model.no_sync()
                if (self.dist_info.enabled and not last)
                else contextlib.nullcontext()
            )
            with ctx:
                ta = time.perf_counter()
                with self.autocast():
                    loss = _loss_of(self.model(x, y)) / cfg.grad_accum
                tb = time.perf_counter()
                loss.backward()
                tc = time.perf_counter()
            fwd += tb - ta
            bwd += tc - tb
            total += loss.detach().float().item()
        if self.dist_info.enabled:  # the reported loss is the whole batch's, on every rank
            t = torch.tensor([total], device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            total = t.item() / self.dist_info.world_size
        if not math.isfinite(total):
            raise TrainingFailure("nan_loss", f"training loss is {total} at iter {it}", it)
        for h in self.hooks:
            if hasattr(h, "after_backward"):
                h.after_backward(it)
        td = time.perf_counter()
        optimizer_step(self.optimizer, self.raw_model.parameters(), cfg.grad_clip)
        self.optimizer.zero_grad(set_to_none=True)
        for h in self.hooks:
            if hasattr(h, "after_step"):
                h.after_step(it)
        te = time.perf_counter()
        return {
            "loss": total,
            "iter_s": te - t0,
            "iter_ms": 1000 * (te - t0),
            "fwd_ms": 1000 * fwd,
            "bwd_ms": 1000 * bwd,
            "opt_ms": 1000 * (te - td),
        }

    def _train_iter_pending(self, it: int, clock) -> PendingIter:
        """One iteration that never waits for the device: the loss stays there, times are marks."""
        cfg = self.cfg
        start = clock.mark()
        micro = []
        total = torch.zeros((), device=self.device)
        for m in range(cfg.grad_accum):
            x, y = self.get_batch("train", self.gen)
            last = m == cfg.grad_accum - 1
            ctx = (
                self.model.no_sync()
                if (self.dist_info.enabled and not last)
                else contextlib.nullcontext()
            )
            with ctx:
                before = clock.mark()
                with self.autocast():
                    loss = _loss_of(self.model(x, y)) / cfg.grad_accum
                forward = clock.mark()
                loss.backward()
                micro.append((before, forward, clock.mark()))
            total += loss.detach().float()
        if self.dist_info.enabled:  # the whole batch's loss, on every rank, on the device
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
            total = total / self.dist_info.world_size
        for h in self.hooks:
            if hasattr(h, "after_backward"):
                h.after_backward(it)
        opt = clock.mark()
        optimizer_step(self.optimizer, self.raw_model.parameters(), cfg.grad_clip)
        self.optimizer.zero_grad(set_to_none=True)
        for h in self.hooks:
            if hasattr(h, "after_step"):
                h.after_step(it)
        return PendingIter(total, start, micro, opt, clock.mark())
