"""CUDA settings a GPU profile trains under: TF32 matmuls, cuDNN autotuning, the allocator.

`apply(settings)` takes a profile's `gpu_runtime` (experiments/profiles.bzl)
before anything touches the GPU, and returns what it set, for the run's
record. The allocator setting reaches torch through the environment variable
PYTORCH_CUDA_ALLOC_CONF, read when CUDA first allocates, so it is set in this
process's environment from the profile, never from the user's; if CUDA has
started already (a torchrun rank that set its device), the running
allocator is given the same setting.
"""

from __future__ import annotations

import os

KEYS = ("tf32", "cudnn_benchmark", "cuda_alloc_conf")


def apply(settings: dict | None) -> dict | None:
    """Applies a profile's GPU runtime settings; None (the CPU profile) applies nothing."""
    if not settings:
        return None
    unknown = sorted(set(settings) - set(KEYS))
    if unknown:
        raise ValueError(f"gpu_runtime: unknown settings {unknown}; accepted: {', '.join(KEYS)}")
    import torch

    conf = settings.get("cuda_alloc_conf")
    if conf:
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = conf
        if torch.cuda.is_initialized():
            torch.cuda.memory._set_allocator_settings(conf)
    tf32 = bool(settings.get("tf32"))
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = bool(settings.get("cudnn_benchmark"))
    return {k: settings.get(k) for k in KEYS}
