"""What one training run does: budget, batch, schedule, evaluation, precision.

A `TrainConfig` is the trainer's whole configuration (experiments/trainer.py).
The GPT-2 runs take theirs from the run profile (experiments/profiles.py,
`Profile.train`), overridden once by the run's settings (`--iters`,
`--time`); the vision runs build theirs from the pruning matrix's
declaration. It holds no torch objects, so the run record can describe it
without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Training precision: fp32 everywhere, bf16 autocast on a GPU.
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    max_iters: int = 100
    time_budget_s: float | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup_iters: int = 10
    lr_decay_iters: int | None = None  # defaults to max_iters
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_interval: int = 50
    eval_iters: int = 10
    log_interval: int = 1
    checkpoint_interval: int = 0  # 0: never
    dtype: str = "float32"
    compile: bool = False
    device: str = "cpu"
    seed: int = 1337
    progress: bool = True
    tokens_per_sample: int = 1  # block_size for language models, 1 for images

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r}: accepted: {', '.join(DTYPES)}")
        for name in ("max_iters", "batch_size", "grad_accum", "eval_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        object.__setattr__(self, "betas", tuple(self.betas))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d
