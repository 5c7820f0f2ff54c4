"""Runs an experiment's steps into a resumable result directory.

Every experiment target (the RATIO ablation, the model-variant ablation, the
pruning matrix) describes its steps as StepSpec objects and calls
`run_steps()`. It creates `results/<experiment>/<run_id>/` under the user's
workspace, writes the manifest, skips every step that has DONE, trains the
rest, records a failing step's reason in FAILED (then continues or stops per
`--on-failure`), and rewrites the summary table and plots after each step.

The default run id is `<profile>-<hash of the resolved config>`: the same
command lands in the same directory and resumes there, and a changed setting
(say --iters) starts a new run instead of mixing two configurations.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from experiments import manifest as manifest_mod
from experiments import plots
from experiments.profiles import DEFAULT_PROFILE, PROFILES
from experiments.results import (
    ResultsError,
    RunDir,
    atomic_write_json,
    atomic_write_text,
    read_json,
    read_jsonl,
)
from experiments.tracking import TRACKERS, make_tracker
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


@dataclass
class StepSpec:
    name: str  # directory-safe: "step00", "B", "lenet5-adamw-magnitude-50"
    label: str  # what the step is, for tables
    build: Callable[[str], StepBuild]  # device -> StepBuild


def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"hardware profile: {', '.join(PROFILES)} (default {DEFAULT_PROFILE})",
    )
    ap.add_argument("--steps", default=None, help="comma-separated steps to run (default: all)")
    ap.add_argument(
        "--iters", type=int, default=None, help="iterations per step (overrides profile)"
    )
    ap.add_argument("--time", default=None, help="wall-time budget per step: 600, 10m, 2h")
    ap.add_argument("--run-id", default=None, help="result directory name (default: derived)")
    ap.add_argument(
        "--results-dir", default=None, help="results root (default: <workspace>/results)"
    )
    ap.add_argument("--tracker", default="none", choices=TRACKERS)
    ap.add_argument(
        "--on-failure",
        default="continue",
        choices=("continue", "stop"),
        help="after a failed step (NaN loss, OOM): go on or stop",
    )
    ap.add_argument("--gpu", type=int, default=None, help="GPU index (default: the profile's)")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--compile", dest="compile", action="store_true", default=None)
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument(
        "--checkpoint-interval",
        type=int,
        default=None,
        help="checkpoint every N iterations (default: the profile's)",
    )
    ap.add_argument("--list", action="store_true", help="list the steps and exit")


def pick_device(profile_device: str, gpu: int | None, gpus: int = 1) -> str:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if gpus > 1 and world != gpus:
        raise RuntimeError(
            f"this profile trains on {gpus} GPUs but WORLD_SIZE is {world}; launch it with "
            f"torchrun --standalone --nproc_per_node {gpus} bazel-bin/experiments/<target> ... "
            "after bazel build (see experiments/README.md)"
        )
    if profile_device == "cpu":
        if gpu is not None:
            raise ValueError("--gpu given with a CPU profile; pick a GPU profile (see --profile)")
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"this profile needs a GPU, and torch {torch.__version__} sees none; "
            "use --profile cpu, or build the CUDA/ROCm venv (bazel run --config=cuda ...)"
        )
    return f"cuda:{gpu}" if gpu is not None else "cuda"


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


def _results_root(args) -> str:
    return args.results_dir or os.path.join(manifest_mod.workspace_dir(), "results")


def run_steps(
    experiment: str,
    steps: list[StepSpec],
    args: argparse.Namespace,
    config: dict,
    train_meta: dict,
    device: str,
    summary_columns: list[tuple[str, str]] | None = None,
    extra_plots: Callable[[RunDir, dict], None] | None = None,
) -> int:
    """Trains every pending step; returns 0 when all selected steps are DONE, else 1."""
    info, device = setup_distributed(device)
    cfg_hash = manifest_mod.config_hash(config)[:8]
    run_id = args.run_id or f"{args.profile}-{cfg_hash}"
    run = RunDir(
        os.path.join(_results_root(args), experiment, run_id),
        rerun_command=f"bazel run //experiments:{experiment} -- --profile {args.profile} "
        f"--run-id {run_id} --steps {{step}}",
    )
    log = Logger(run.path("logs", "run.log"), enabled=info.is_main)
    mpath = run.path("manifest.json")
    if info.is_main:
        existing = read_json(mpath)
        if existing is None:
            m = manifest_mod.build_manifest(
                experiment, run_id, config, train_meta, device, info.world_size
            )
            m["invocations"] = [
                {"time": m["created"], "git": m["git"], "steps": [s.name for s in steps]}
            ]
            atomic_write_json(mpath, m)
        else:
            if existing.get("config_sha256") != manifest_mod.config_hash(config):
                log(f"error: {mpath} was made with another configuration; use another --run-id")
                return 2
            git = manifest_mod.git_state()
            if git.get("commit") != existing.get("git", {}).get("commit"):
                log(
                    f"note: resuming a run started at commit {existing['git'].get('commit')} "
                    f"from commit {git.get('commit')}; manifest.json records both"
                )
            existing.setdefault("invocations", []).append(
                {
                    "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                    "git": git,
                    "steps": [s.name for s in steps],
                }
            )
            atomic_write_json(mpath, existing)
    log(f"{experiment}: results in {run.root}")
    tracker = (
        make_tracker(
            args.tracker,
            project=f"knlp-{experiment}",
            run_name=run_id,
            config=config,
            directory=run.path("tracking"),
            group=experiment,
            say=log,
        )
        if info.is_main
        else None
    )
    for s in steps:
        run.done_result(s.name)  # a damaged DONE step stops the run (ResultsError)
    pending = [s for s in steps if not run.is_done(s.name)]
    if not pending:
        log(f"all {len(steps)} selected steps are DONE; nothing to train")
    status = 0
    t_run = time.time()
    for spec in steps:
        if run.is_done(spec.name):
            continue
        step_log = Logger(run.log_path(spec.name), enabled=info.is_main)
        step_log(f"== {spec.name}: {spec.label}")
        t0 = time.time()
        try:
            built = spec.build(device)
            built.train_cfg.progress = not args.no_progress
            if args.checkpoint_interval is not None:
                built.train_cfg.checkpoint_interval = args.checkpoint_interval
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
        except ResultsError:
            raise  # a results file cannot be written or read: not the step's fault
        except (TrainingFailure, Exception) as e:  # noqa: BLE001
            reason = (
                e.reason
                if isinstance(e, TrainingFailure)
                else ("oom" if "out of memory" in str(e).lower() else "error")
            )
            if info.is_main:
                run.mark_failed(
                    spec.name,
                    reason,
                    {"message": str(e)[:2000], "traceback": traceback.format_exc()[-4000:]},
                )
            step_log(f"{spec.name}: FAILED ({reason}): {e}")
            status = 1
            if args.on_failure == "stop":
                log("stopping after the failed step (--on-failure stop)")
                break
        finally:
            if info.is_main:
                write_summary(run, experiment, steps, config, summary_columns, extra_plots)
            if info.enabled:
                torch.distributed.barrier()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    if info.is_main:
        write_summary(run, experiment, steps, config, summary_columns, extra_plots)
        if tracker:
            tracker.finish()
        done = sum(run.is_done(s.name) for s in steps)
        log(
            f"{experiment}: {done}/{len(steps)} steps DONE in {time.time() - t_run:.1f} s this "
            f"invocation; summary: {run.path('summary.md')}"
        )
        if done < len(steps):
            status = 1
    return status


DEFAULT_COLUMNS = [
    ("step", "step"),
    ("label", "what"),
    ("model_class", "model"),
    ("params", "params"),
    ("kv_bytes_per_token", "KV B/token"),
    ("iters", "iters"),
    ("first_loss", "loss@1"),
    ("final_train_loss", "train loss"),
    ("val_loss", "val loss"),
    ("val_ppl", "val ppl"),
    ("sparsity", "sparsity"),
    ("tokens_per_s_median", "tok/s"),
    ("step_wall_s", "wall s"),
]


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v).replace("|", "/")


def write_summary(
    run: RunDir,
    experiment: str,
    steps: list[StepSpec],
    config: dict,
    columns=None,
    extra_plots=None,
) -> None:
    columns = columns or DEFAULT_COLUMNS
    rows, curves, ppl, quality = [], {}, {}, {}
    for s in steps:
        res = run.done_result(s.name)
        fail = run.failure(s.name)
        if res:
            row = dict(res, step=s.name, label=s.label, status="done")
            recs = read_jsonl(os.path.join(run.root, "steps", s.name, "metrics.jsonl"))
            curves[s.name] = [(r["iter"], r["loss"]) for r in recs if r.get("kind") == "train"]
            if res.get("val_ppl") is not None:
                ppl[s.name] = res["val_ppl"]
                if res.get("kv_bytes_per_token"):
                    quality[s.name] = (res["kv_bytes_per_token"], res["val_ppl"])
        elif fail:
            row = {"step": s.name, "label": s.label, "status": f"FAILED: {fail.get('reason')}"}
        else:
            row = {"step": s.name, "label": s.label, "status": "pending"}
        rows.append(row)
    m = read_json(run.path("manifest.json"), {})
    git = m.get("git", {})
    lines = [
        f"# {experiment} / {os.path.basename(run.root)}",
        "",
        f"Profile `{config.get('profile', {}).get('name', '?')}`, commit "
        f"`{git.get('commit')}`{' (dirty)' if git.get('dirty') else ''}, torch "
        f"{m.get('versions', {}).get('torch')}, device {m.get('hardware', {}).get('device')}"
        f" ({m.get('hardware', {}).get('gpu') or m.get('hardware', {}).get('cpu')}). "
        f"{sum(r['status'] == 'done' for r in rows)} of {len(rows)} steps done. "
        "Losses are cross-entropy in nats; `loss@1` is the first iteration's, `train loss` the "
        "mean of the last 10, `val` the final evaluation.",
        "",
        "| " + " | ".join(h for _, h in columns) + " | status |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k)) for k, _ in columns) + f" | {r['status']} |")
    lines += [
        "",
        "Plots: "
        + ", ".join(
            f"[{p}](plots/{p})" for p in sorted(os.listdir(run.path("plots"))) if p.endswith(".png")
        )
        or "Plots: none yet",
        "",
    ]
    if curves:
        plots.loss_curves(
            curves, run.path("plots", "loss_curves.png"), f"{experiment}: training loss"
        )
    if ppl:
        plots.bar_metric(
            ppl,
            run.path("plots", "val_ppl.png"),
            "validation perplexity",
            f"{experiment}: validation perplexity per step",
        )
    if quality:
        plots.scatter(
            quality,
            run.path("plots", "quality_vs_kv_bytes.png"),
            "KV-cache bytes per token (all layers)",
            "validation perplexity",
            f"{experiment}: quality vs KV-cache size",
        )
    if extra_plots:
        extra_plots(run, {r["step"]: r for r in rows})
    pngs = sorted(p for p in os.listdir(run.path("plots")) if p.endswith(".png"))
    lines[-2] = "Plots: " + (", ".join(f"[{p}](plots/{p})" for p in pngs) or "none yet")
    atomic_write_text(run.path("summary.md"), "\n".join(lines) + "\n")


__all__ = ["StepBuild", "StepSpec", "add_common_args", "pick_device", "run_steps", "DistInfo"]
