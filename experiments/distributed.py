"""Which process of a torchrun group this is, and joining the group.

experiments/run_step.py calls setup_distributed for every run's action,
whatever its kind, and experiments/ddp_check.py for the DDP smoke run; the
trainer takes the DistInfo it returns. It lives apart from the trainer so
that the measurements' actions do not read the trainer, and an edit of the
training loop does not rerun them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str) -> tuple[DistInfo, str]:
    """Joins the torchrun process group when WORLD_SIZE > 1; returns (info, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, local_rank=local, world_size=world), device
