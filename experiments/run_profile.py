"""A run profile as Python: the `Profile` class and a run's overrides of it.

A profile (declared in experiments/profiles.bzl) fixes where a run trains
and how big it is: the device and GPU count, the dataset, the model size, and
one training configuration (`Profile.train`, experiments/train_config.py)
that every step of the profile shares. A run's action receives its own
profile's declaration as data (`Profile.from_declaration`), never the file
of all profiles, so editing one profile retrains only that profile's runs;
the run's settings apply once, with `Profile.overridden(iters, time)`.
experiments/profiles.py reads every declared profile, for listings, docs and
tests.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from experiments.train_config import TrainConfig

# The RATIO ablation's iteration budget; step schedules (pruning warmup and
# ramp) are declared for it and scaled to shorter budgets.
REFERENCE_ITERS = 10400

# Declaration keys that are not the trainer's (the rest of `train` is).
_TOP = (
    "description",
    "device",
    "gpus",
    "gpu_target",
    "accelerator",
    "dataset",
    "dims",
    "threads",
    "block_size",
    "batch_size",
    "grad_accum",
    "train",
    "gpu_runtime",
)


class ProfileError(ValueError):
    """An unknown profile, a malformed declaration or a bad override."""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    device: str  # "cpu" or "cuda" (ROCm builds of torch also use "cuda")
    gpus: int
    gpu_target: str | None  # tools/bazel/gpu_targets.bzl, None on the CPU
    accelerator: str  # the venv's pip lock: cpu, cuda or rocm
    dataset: str
    # Model size: "real" trains each step's own config (GPT-2 124M for the RATIO
    # ablation); a dict {n_layer, n_head, n_embd} trains every step at that
    # trunk, its latents and RA band scaled with it (ablations/step.py).
    dims: str | dict
    threads: int | None  # torch's CPU threads (None: torch's default)
    block_size: int
    train: TrainConfig  # batch, budget, schedule, eval, precision, compile
    gpu_runtime: dict | None  # TF32, cuDNN autotuning, allocator (experiments/gpu_runtime.py)

    @classmethod
    def from_declaration(cls, name: str, decl: dict) -> Profile:
        """The Profile of one profiles.bzl entry; a malformed entry raises ProfileError."""
        missing = [k for k in _TOP if k not in decl]
        unknown = sorted(set(decl) - set(_TOP))
        if missing or unknown:
            raise ProfileError(
                f"profile {name!r}: missing fields {missing}, unknown fields {unknown}; "
                f"a profile has: {', '.join(_TOP)}"
            )
        try:
            train = TrainConfig(
                **decl["train"],
                batch_size=decl["batch_size"],
                grad_accum=decl["grad_accum"],
                tokens_per_sample=decl["block_size"],
                device=decl["device"],
            )
        except (TypeError, ValueError) as e:
            raise ProfileError(f"profile {name!r}: train: {e}") from None
        fields = {k: decl[k] for k in _TOP if k not in ("train", "batch_size", "grad_accum")}
        return cls(name=name, train=train, **fields)

    def overridden(self, iters: int | None = None, time: str | None = None) -> Profile:
        """This profile with a run's --iters and --time applied (eval and warmup kept inside)."""
        t = self.train
        changes = {}
        if iters is not None:
            if iters < 1:
                raise ProfileError(f"--iters {iters}: must be >= 1")
            changes["max_iters"] = iters
            changes["warmup_iters"] = min(t.warmup_iters, max(0, iters // 10))
            changes["eval_interval"] = min(t.eval_interval, iters)
            if t.checkpoint_interval:
                changes["checkpoint_interval"] = min(t.checkpoint_interval, iters)
        if time is not None:
            changes["time_budget_s"] = parse_duration(time)
        if not changes:
            return self
        return dataclasses.replace(self, train=dataclasses.replace(t, **changes))

    @property
    def effective_batch(self) -> int:
        """Sequences per optimizer step: batch x grad-accum x GPUs."""
        return self.train.batch_size * self.train.grad_accum * max(1, self.gpus)

    @property
    def effective_batch_tokens(self) -> int:
        return self.effective_batch * self.block_size

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["train"] = self.train.to_dict()
        d["effective_batch"] = self.effective_batch
        d["effective_batch_tokens"] = self.effective_batch_tokens
        return d


_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """'90', '90s', '30m', '2h', '1.5h' -> seconds."""
    m = _TIME.match(str(text))
    if not m:
        raise ProfileError(f"--time {text!r}: expected seconds or a number with s, m, h or d")
    value, unit = float(m.group(1)), m.group(2) or "s"
    seconds = value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if seconds <= 0:
        raise ProfileError(f"--time {text!r}: must be positive")
    return seconds
