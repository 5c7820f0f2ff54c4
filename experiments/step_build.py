"""What one run trains: the built model, optimizer, batches and settings, handed to the trainer.

Every training kind (experiments/gpt2_step.py, vision_step.py, and the
tests' bigram_step.py) turns a run's spec into a `StepBuild`;
experiments/run_step.py trains it with experiments/trainer.py and writes the
result. `built` describes what was built (class, config, optimizer, pruning)
for the result's record; `values` are figures known before training
(parameters, cache bytes); `finish(model)` returns the figures and research
checks of the trained model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from experiments.train_config import TrainConfig


@dataclass
class StepBuild:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    get_batch: Callable
    train_cfg: TrainConfig
    hooks: list = field(default_factory=list)
    built: dict = field(default_factory=dict)  # what was built, for the record
    values: dict = field(default_factory=dict)  # figures known before training
    finish: Callable[[torch.nn.Module], tuple[dict, list]] | None = None  # (figures, checks)


class SparsityHook:
    """Reports a pruning optimizer's sparsity in every logged record."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def metrics(self) -> dict:
        return {"sparsity": self.optimizer.sparsity()}
