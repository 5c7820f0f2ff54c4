"""Tiny models of the trainer's tests (testonly): Linear and its Batches.

Linear has five weights and trains in milliseconds; the trainer's loop tests
(experiments/trainer_loop_test.py) train it through experiments/trainer.py.
The BigramLM is experiments/bigram.py's.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Linear(nn.Module):
    """y = x w + b, squared error: `model(x, y)` returns (prediction, loss). Five weights,
    the same ones every time it is built."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 1)

    def forward(self, x, y):
        pred = self.lin(x)
        return pred, F.mse_loss(pred, y)


class Batches:
    """Linear's batches: random rows with a linear target (val shifted by 1); counts the
    draws per split."""

    def __init__(self, batch=4):
        self.batch, self.calls = batch, {"train": 0, "val": 0}

    def __call__(self, split, gen):
        self.calls[split] += 1
        x = torch.randn(self.batch, 4, generator=gen)
        return x, x.sum(-1, keepdim=True) + (1.0 if split == "val" else 0.0)
