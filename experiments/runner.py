"""The step loop: runs an experiment's steps into a resumable result directory.

Every experiment target (the RATIO ablation, the model-variant ablation, the
pruning matrix) describes its steps as StepSpec objects and calls
`run_steps()` with its RunOptions (experiments/options.py). The loop opens the
run directory (experiments/resume.py), skips every step that has DONE, trains
the rest, records a failing step's reason in FAILED (then continues or stops
per `--on-failure`), and rewrites the report (experiments/summary.py) after
each step.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from experiments.options import RunOptions
from experiments.results import ResultsError, RunDir
from experiments.resume import ConfigMismatch, record_invocation, run_dir
from experiments.summary import LANGUAGE, Report, write_summary
from experiments.tracking import make_tracker
from experiments.trainer import DistInfo, TrainConfig, Trainer, TrainingFailure, setup_distributed


@dataclass
class StepBuild:
    """What a step trains: made lazily, so skipped steps cost nothing."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    get_batch: Callable
    train_cfg: TrainConfig
    hooks: list = field(default_factory=list)
    info: dict = field(default_factory=dict)  # params, model class, KV bytes/token, ...
    finish: Callable[[torch.nn.Module], dict] | None = None  # extra final metrics


@dataclass(frozen=True)
class StepSpec:
    name: str  # directory-safe: "step00", "B", "lenet5-adamw-magnitude-50", "step00-s1338"
    label: str  # what the step is, for tables
    build: Callable[[str], StepBuild]  # device -> StepBuild
    group: str | None = None  # the step a seed's run belongs to (None: `name`)
    seed: int | None = None  # the run's seed, for summary.json (per_seed sets it)


def per_seed(opts: RunOptions, specs_for: Callable[[RunOptions], list[StepSpec]]):
    """Every step once per seed of --seeds, all steps of one seed before the next.

    With one seed the specs are `specs_for(opts)` unchanged; with more, each
    run is named `<step>-s<seed>` and grouped under its step for the summary.
    """
    if opts.seeds == 1:
        return [dataclasses.replace(spec, seed=opts.seed) for spec in specs_for(opts)]
    out = []
    for seed in opts.seed_list:
        for spec in specs_for(dataclasses.replace(opts, seed=seed)):
            out.append(
                dataclasses.replace(spec, name=f"{spec.name}-s{seed}", group=spec.name, seed=seed)
            )
    return out


class Logger:
    """Prints to stderr and appends to logs/<name>.log (flushed per line)."""

    def __init__(self, path: str | None, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def __call__(self, msg: str) -> None:
        if not self.enabled:
            return
        stamp = _dt.datetime.now(_dt.UTC).strftime("%H:%M:%S")
        print(msg, file=sys.stderr, flush=True)
        if self.path:
            with open(self.path, "a") as f:
                f.write(f"{stamp} {msg}\n")
                f.flush()


def _failure_reason(e: BaseException) -> str:
    if isinstance(e, TrainingFailure):
        return e.reason
    return "oom" if "out of memory" in str(e).lower() else "error"


def _train_step(spec: StepSpec, run: RunDir, device: str, info: DistInfo, tracker) -> bool:
    """Builds and trains one step, marking it DONE or FAILED; True when it is DONE."""
    step_log = Logger(run.log_path(spec.name), enabled=info.is_main)
    step_log(f"== {spec.name}: {spec.label}")
    t0 = time.time()
    try:
        built = spec.build(device)
        trainer = Trainer(
            model=built.model,
            optimizer=built.optimizer,
            get_batch=built.get_batch,
            cfg=built.train_cfg,
            metrics_path=run.metrics_path(spec.name),
            checkpoint_path=run.checkpoint_path(spec.name),
            hooks=built.hooks,
            tracker=tracker,
            step_name=spec.name,
            dist_info=info,
            log=step_log,
        )
        result = trainer.fit()
        if built.finish:
            result.update(built.finish(trainer.raw_model))
        result.update(label=spec.label, **built.info)
        result["step_wall_s"] = time.time() - t0
        if info.is_main:
            run.mark_done(spec.name, result)
        step_log(
            f"{spec.name}: loss {result['first_loss']:.3f} -> "
            f"{result['final_train_loss']:.3f}, "
            f"val {result['val_loss']:.3f} (ppl {result['val_ppl']:.1f}), "
            f"{result['tokens_per_s_median']:,.0f} tok/s, {result['step_wall_s']:.1f} s"
            if result.get("first_loss") is not None
            else f"{spec.name}: done in {result['step_wall_s']:.1f} s"
        )
        return True
    except ResultsError:
        raise  # a results file cannot be written or read: not the step's fault
    except (TrainingFailure, Exception) as e:  # noqa: BLE001
        reason = _failure_reason(e)
        if info.is_main:
            run.mark_failed(
                spec.name,
                reason,
                {"message": str(e)[:2000], "traceback": traceback.format_exc()[-4000:]},
            )
        step_log(f"{spec.name}: FAILED ({reason}): {e}")
        return False


def _tracker(experiment: str, opts: RunOptions, run: RunDir, config: dict, log):
    return make_tracker(
        opts.tracker,
        project=f"knlp-{experiment}",
        run_name=os.path.basename(run.root),
        config=config,
        directory=run.path("tracking"),
        group=experiment,
        say=log,
    )


def run_steps(
    experiment: str,
    steps: list[StepSpec],
    opts: RunOptions,
    config: dict,
    train_meta: dict,
    report: Report = LANGUAGE,
) -> int:
    """Trains every pending step; returns 0 when all selected steps are DONE, else 1.

    With --strict, a failed research check (summary.md) also returns 1.
    """
    info, device = setup_distributed(opts.device)
    if opts.profile.threads:
        torch.set_num_threads(opts.profile.threads)
    run = run_dir(experiment, opts, config)
    log = Logger(run.path("logs", "run.log"), enabled=info.is_main)
    if info.is_main:
        for stale in run.remove_stale_temps():
            log(f"removed {stale}, left by a kill mid-write")
        names = [s.name for s in steps]
        try:
            record_invocation(
                run, experiment, config, train_meta, device, info.world_size, names, log
            )
        except ConfigMismatch as e:
            log(f"error: {e}")
            return 2
    log(f"{experiment}: results in {run.root}")
    tracker = _tracker(experiment, opts, run, config, log) if info.is_main else None
    for s in steps:
        run.done_result(s.name)  # a damaged DONE step stops the run (ResultsError)
    if all(run.is_done(s.name) for s in steps):
        log(f"all {len(steps)} selected steps are DONE; nothing to train")
    status = 0
    t_run = time.time()
    for spec in steps:
        if run.is_done(spec.name):
            continue
        try:
            if not _train_step(spec, run, device, info, tracker):
                status = 1
                if opts.on_failure == "stop":
                    log("stopping after the failed step (--on-failure stop)")
                    break
        finally:
            if info.is_main:
                write_summary(run, experiment, steps, config, report)
            if info.enabled:
                torch.distributed.barrier()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    if not info.is_main:
        return status
    failed_checks = write_summary(run, experiment, steps, config, report)
    if tracker:
        tracker.finish()
    done = sum(run.is_done(s.name) for s in steps)
    log(
        f"{experiment}: {done}/{len(steps)} steps DONE in {time.time() - t_run:.1f} s this "
        f"invocation; summary: {run.path('summary.md')}"
    )
    status = max(status, _checks_status(failed_checks, opts, log))
    return 1 if done < len(steps) else status


def _checks_status(failed_checks: list, opts: RunOptions, log) -> int:
    """1 when research checks failed and --strict makes that fail the run, else 0."""
    if not failed_checks:
        return 0
    log(f"{len(failed_checks)} research checks failed (summary.md, Research checks)")
    return 1 if opts.strict else 0


__all__ = ["StepBuild", "StepSpec", "per_seed", "run_steps", "DistInfo"]
