"""Hardware profiles: one declaration each, read by every experiment, test and doc table.

A profile fixes where a run trains and how big it is: the device and GPU
count, precision, torch.compile, the dataset, the model size and the
training budget. `cpu` is the default: the whole 19-step ablation trains for
real on a 2-core machine in minutes, on Shakespeare characters, long enough
that every step learns well below the unigram entropy (the candidates
measured to choose it are in experiments/README.md). The GPU profiles use
the real GPT-2 124M settings of the RATIO ablation (block 1024, 12x12x768, 10,400
iterations, eval every 500 on 200 batches, warmup 2000, LR 6e-4 cosine to
6e-5, weight decay 0.1, dropout 0.1, bf16, AdamWSPAM) with an effective batch
of 64 sequences (65,536 tokens) on every GPU profile, so their runs compare.

Command-line overrides (`--iters`, `--time`, `--steps`) are applied with
`resolve()`, which also rejects unknown names with the list of valid ones.

Every GPU profile also declares the device settings of the group's notes
(TF32 matmuls, `cudnn.benchmark`, the allocator's `expandable_segments:True`);
`apply_gpu_settings()` applies them when the device is CUDA and returns what
it applied, for the run's manifest.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    device: str  # "cpu" or "cuda" (ROCm builds of torch also use "cuda")
    gpus: int
    dtype: str  # float32 | bfloat16
    compile: bool
    dataset: str
    block_size: int
    batch_size: int  # per device
    grad_accum: int
    max_iters: int
    eval_interval: int
    eval_iters: int
    warmup_iters: int
    lr: float
    min_lr: float
    weight_decay: float
    # Model size: "real" trains each step's own config (GPT-2 124M for the RATIO
    # ablation); a dict {n_layer, n_head, n_embd} trains every step at that
    # trunk, its latents and RA band scaled with it (registry.config). The
    # vocabulary follows the dataset's tokenizer (gpt2_common.model_vocab_size).
    # Optimizer and dropout come from the step itself
    # (experiments/ablations/steps.bzl), never from a profile.
    dims: str | dict
    log_interval: int = 1
    checkpoint_interval: int = 0
    time_budget_s: float | None = None
    # torch's CPU threads (None: torch's default). Small models gain little from a
    # second thread and lose badly when other processes share the cores.
    threads: int | None = None
    # -- GPU settings, applied by apply_gpu_settings() on a CUDA device ------------
    # TF32 for float32 matmuls and convolutions (torch.backends.*.allow_tf32).
    tf32: bool = False
    # cuDNN picks the fastest algorithm per input shape (torch.backends.cudnn.benchmark).
    cudnn_benchmark: bool = False
    # The caching allocator's settings (PYTORCH_CUDA_ALLOC_CONF), or None for torch's.
    cuda_alloc_conf: str | None = None

    @property
    def effective_batch(self) -> int:
        """Sequences per optimizer step: batch x grad-accum x GPUs."""
        return self.batch_size * self.grad_accum * max(1, self.gpus)

    @property
    def effective_batch_tokens(self) -> int:
        return self.effective_batch * self.block_size

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["effective_batch"] = self.effective_batch
        d["effective_batch_tokens"] = self.effective_batch_tokens
        return d


# The RATIO ablation's iteration budget; step schedules (pruning warmup and
# ramp) are declared for it and scaled to shorter budgets.
REFERENCE_ITERS = 10400

_GPU_COMMON = dict(
    dtype="bfloat16",
    compile=True,
    dataset="fineweb-edu",
    block_size=1024,
    max_iters=REFERENCE_ITERS,
    eval_interval=500,
    eval_iters=200,
    warmup_iters=2000,
    lr=6e-4,
    min_lr=6e-5,
    weight_decay=0.1,
    dims="real",
    log_interval=10,
    checkpoint_interval=500,
    # GPU settings (see Profile): the group's notes for every GPU profile.
    tf32=True,
    cudnn_benchmark=True,
    cuda_alloc_conf="expandable_segments:True",
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile(
            name="cpu",
            description="any CPU: every step at 2 layers x 128 on Shakespeare characters, fp32",
            device="cpu",
            gpus=0,
            dtype="float32",
            compile=False,
            dataset="shakespeare_char",
            block_size=64,
            batch_size=12,
            grad_accum=1,
            max_iters=800,
            eval_interval=400,
            eval_iters=40,
            warmup_iters=40,
            lr=2e-3,
            min_lr=2e-4,
            weight_decay=0.1,
            dims={"n_layer": 2, "n_head": 2, "n_embd": 128},
            log_interval=1,
            checkpoint_interval=200,
            threads=1,
        ),
        Profile(
            name="w7900",
            description="monster: one AMD Radeon Pro W7900 48 GB (ROCm), GPT-2 124M",
            device="cuda",
            gpus=1,
            batch_size=8,
            grad_accum=8,
            **_GPU_COMMON,
        ),
        Profile(
            name="a10g-x4",
            description="rented pod: four NVIDIA A10G 24 GB, DDP, GPT-2 124M",
            device="cuda",
            gpus=4,
            batch_size=4,
            grad_accum=4,
            **_GPU_COMMON,
        ),
        Profile(
            name="h100",
            description="rented pod: one NVIDIA H100 80 GB, GPT-2 124M",
            device="cuda",
            gpus=1,
            batch_size=16,
            grad_accum=4,
            **_GPU_COMMON,
        ),
        Profile(
            name="b200-x4",
            description="rented pod: four NVIDIA B200, DDP, GPT-2 124M",
            device="cuda",
            gpus=4,
            batch_size=16,
            grad_accum=1,
            **_GPU_COMMON,
        ),
    ]
}

DEFAULT_PROFILE = "cpu"


def apply_gpu_settings(profile: Profile, device: str) -> dict:
    """Applies the profile's GPU settings when `device` is CUDA; returns what it set.

    On another device nothing changes and the result is {}. An allocator setting
    already in PYTORCH_CUDA_ALLOC_CONF for the same key is kept, and the value in
    force is what is returned. The allocator reads the variable when CUDA first
    allocates, so call this before the model moves to the GPU (it also applies
    the setting to an allocator already running).
    """
    import os

    import torch

    if torch.device(device).type != "cuda":
        return {}
    torch.backends.cuda.matmul.allow_tf32 = profile.tf32
    torch.backends.cudnn.allow_tf32 = profile.tf32
    torch.backends.cudnn.benchmark = profile.cudnn_benchmark
    applied = {"tf32": profile.tf32, "cudnn_benchmark": profile.cudnn_benchmark}
    if profile.cuda_alloc_conf:
        current = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")
        keys = {part.split(":")[0] for part in current.split(",") if part}
        missing = [
            part for part in profile.cuda_alloc_conf.split(",") if part.split(":")[0] not in keys
        ]
        conf = ",".join(p for p in [current, *missing] if p)
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = conf
        if torch.cuda.is_initialized():
            torch.cuda.memory._set_allocator_settings(conf)
        applied["PYTORCH_CUDA_ALLOC_CONF"] = conf
    return applied


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """'90', '90s', '30m', '2h', '1.5h' -> seconds."""
    m = _TIME.match(str(text))
    if not m:
        raise ValueError(f"--time {text!r}: expected seconds or a number with s, m, h or d")
    value, unit = float(m.group(1)), m.group(2) or "s"
    seconds = value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if seconds <= 0:
        raise ValueError(f"--time {text!r}: must be positive")
    return seconds


def parse_steps(text: str | None, valid: list[str]) -> list[str]:
    """'0,5,8' (or None for all) -> step names, in the order given; unknown ones fail."""
    if text is None or text.strip() in ("", "all"):
        return list(valid)
    chosen = []
    for part in text.split(","):
        part = part.strip()
        if part not in valid:
            raise ValueError(f"unknown step {part!r}; valid steps: {', '.join(valid)}")
        if part not in chosen:
            chosen.append(part)
    return chosen


def resolve(profile: str, iters: int | None = None, time: str | None = None) -> Profile:
    """The named profile with --iters / --time applied (eval/warmup kept inside the budget)."""
    p = get_profile(profile)
    changes = {}
    if iters is not None:
        if iters < 1:
            raise ValueError(f"--iters {iters}: must be >= 1")
        changes["max_iters"] = iters
        changes["warmup_iters"] = min(p.warmup_iters, max(0, iters // 10))
        changes["eval_interval"] = min(p.eval_interval, iters)
        if p.checkpoint_interval:
            changes["checkpoint_interval"] = min(p.checkpoint_interval, iters)
    if time is not None:
        changes["time_budget_s"] = parse_duration(time)
    return dataclasses.replace(p, **changes) if changes else p


def dims_text(dims: str | dict) -> str:
    """How a profile's model size reads in a table: "real" or "4 x 128, 4 heads"."""
    if dims == "real":
        return "real"
    return f"{dims['n_layer']} x {dims['n_embd']}, {dims['n_head']} heads"


def markdown_table() -> str:
    """The profile table of experiments/README.md (a test keeps the two equal)."""
    rows = [
        "| profile | device | GPUs | dims | dataset | batch x accum x GPUs x block | iters | "
        "eval | LR | dtype | compile |",
        "|---|---|---:|---|---|---|---:|---|---|---|---|",
    ]
    for p in PROFILES.values():
        rows.append(
            f"| `{p.name}` | {p.device} | {p.gpus} | {dims_text(p.dims)} | {p.dataset} | "
            f"{p.batch_size} x {p.grad_accum} x {max(1, p.gpus)} x {p.block_size} "
            f"= {p.effective_batch_tokens:,} tokens | {p.max_iters:,} | "
            f"{p.eval_iters} batches / {p.eval_interval} iters | {p.lr:g} -> {p.min_lr:g}, "
            f"warmup {p.warmup_iters} | {p.dtype} | {'yes' if p.compile else 'no'} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
