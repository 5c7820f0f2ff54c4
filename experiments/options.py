"""A run's options: resolved once from the command line and the run profile, then frozen.

Every run target (the GPT-2 ablations, the pruning matrix) parses the same
common flags with `add_common_args`, turns them into one `RunOptions` with
`resolve`, and passes that object down: the step builders read their train
settings from it and the runner reads where and how to run from it. Nothing
downstream reads the `argparse.Namespace` or patches what a builder made.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import torch

from experiments.profiles import DEFAULT_PROFILE, PROFILES, Profile, parse_steps
from experiments.profiles import resolve as resolve_profile
from experiments.tracking import TRACKERS


@dataclass(frozen=True)
class RunOptions:
    """What one invocation runs, and how; see `add_common_args` for each flag."""

    profile: Profile  # the run profile, --iters and --time applied
    iters: int | None  # --iters as given (None: each step's own budget)
    steps: tuple[str, ...]  # the selected steps, validated, in the order given
    device: str  # "cpu", "cuda" or "cuda:<gpu>"
    seed: int  # the first seed; --seeds N trains seed, seed + 1, ..., seed + N - 1
    seeds: int  # how many times each step trains, one seed each
    strict: bool  # a failed research check makes the exit status non-zero
    compile: bool  # --compile / --no-compile, else the profile's
    progress: bool
    checkpoint_interval: int | None  # --checkpoint-interval; None: the builder's default
    run_id: str | None
    results_dir: str | None
    tracker: str
    on_failure: str  # "continue" or "stop"
    list_only: bool

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The seeds each step trains with: seed, seed + 1, ..., seed + seeds - 1."""
        return tuple(range(self.seed, self.seed + self.seeds))

    @classmethod
    def for_profile(cls, profile: Profile, device: str = "cpu", **changes) -> RunOptions:
        """Options without a command line (benchmarks, tests): the profile's defaults."""
        fields = dict(
            profile=profile,
            iters=None,
            steps=(),
            device=device,
            seed=1337,
            seeds=1,
            strict=False,
            compile=profile.compile,
            progress=True,
            checkpoint_interval=None,
            run_id=None,
            results_dir=None,
            tracker="none",
            on_failure="continue",
            list_only=False,
        )
        return cls(**{**fields, **changes})


def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"run profile: {', '.join(PROFILES)} (default {DEFAULT_PROFILE})",
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
    ap.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train each step N times, with seeds --seed .. --seed + N - 1 (default 1)",
    )
    ap.add_argument(
        "--strict", action="store_true", help="exit non-zero when a research check fails"
    )
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


def resolve(args: argparse.Namespace, valid_steps) -> RunOptions:
    """The RunOptions of parsed common flags; bad input raises ValueError or RuntimeError.

    `valid_steps` are the experiment's step names in their default order (or a
    function of the resolved profile that returns them); --steps chooses among
    them.
    """
    profile = resolve_profile(args.profile, args.iters, args.time)
    device = pick_device(profile.device, args.gpu, profile.gpus)
    if callable(valid_steps):
        valid_steps = valid_steps(profile)
    steps = parse_steps(args.steps, valid_steps)
    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds}: must be >= 1")
    same_name = (
        "iters",
        "seed",
        "seeds",
        "strict",
        "checkpoint_interval",
        "run_id",
        "results_dir",
        "tracker",
    )
    return RunOptions.for_profile(
        profile,
        device,
        steps=tuple(steps),
        compile=profile.compile if args.compile is None else args.compile,
        progress=not args.no_progress,
        on_failure=args.on_failure,
        list_only=args.list,
        **{name: getattr(args, name) for name in same_name},
    )
