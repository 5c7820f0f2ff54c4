"""Pruning invariants through training, checked at every step of a short run.

For magnitude, movement and AdamWPrune around their optimizers:

- when the inner optimizer steps, every pruned weight's gradient is zero
  (observed with torch's global step pre-hook, so the check sees exactly what
  the optimizer sees, whichever wrapper calls it);
- the set of zero weights only grows (masks only shrink) and pruned weights
  stay exactly zero;
- the achieved sparsity is floor(s N) / N at every rescoring, s from
  pruning.schedule, and does not move between rescorings.

A weight counts as pruned when it is exactly zero after a step: with random
init and dense gradients no kept weight lands on 0.0 by chance.
"""

import math

import pytest
import torch
import torch.nn as nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from pruning.masks import prunable, with_pruning
from pruning.optimizers import make_optimizer
from pruning.schedule import sparsity_at

WARMUP, RAMP_END, FREQ, TARGET, STEPS = 3, 11, 2, 0.6, 16


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 12)
        self.body = nn.Sequential(nn.Linear(12, 24), nn.GELU(), nn.Linear(24, 12))
        self.head = nn.Linear(12, 10, bias=False)
        self.head.weight = self.emb.weight  # tied: not prunable

    def forward(self, idx):
        return self.head(self.body(self.emb(idx)))


def _due(t):
    return WARMUP <= t <= RAMP_END and (t % FREQ == 0 or t == RAMP_END)


def _optimizer(kind, model):
    sched = dict(target=TARGET, warmup=WARMUP, ramp_end=RAMP_END, frequency=FREQ)
    if kind == "adamwprune":
        opt = make_optimizer(
            "adamwprune", model, lr=1e-2, base="adamwspam", pruning=dict(variant="bitter7", **sched)
        )
        return opt, "cubic"
    base = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.1)
    return (
        with_pruning(base, model, kind, **sched),
        {"magnitude": "cubic", "movement": "linear"}[kind],
    )


@pytest.mark.parametrize("kind", ["magnitude", "movement", "adamwprune"])
def test_invariants_hold_at_every_step(kind):
    torch.manual_seed(0)
    model = Net()
    opt, shape = _optimizer(kind, model)
    weights = [w for _, w in prunable(model)]
    n = sum(w.numel() for w in weights)
    leaks = []

    def check_grads(optimizer, args, kwargs):
        for w in weights:
            if w.grad is not None:
                leaks.extend(float(g) for g in w.grad[w == 0] if g != 0)

    handle = register_optimizer_step_pre_hook(check_grads)
    try:
        zeros = [w == 0 for w in weights]
        last_sparsity = 0.0
        for t in range(1, STEPS + 1):
            idx = torch.randint(0, 10, (16,))
            loss = nn.functional.cross_entropy(model(idx), (idx + 1) % 10)
            loss.backward()
            opt.step()
            opt.zero_grad()
            now = [w == 0 for w in weights]
            for before, after in zip(zeros, now, strict=True):
                assert not (before & ~after).any(), f"step {t}: a pruned weight came back"
            zeros = now
            achieved = sum(int(z.sum()) for z in zeros) / n
            if _due(t):
                s = sparsity_at(t, TARGET, WARMUP, RAMP_END, shape)
                assert achieved == math.floor(s * n) / n, f"step {t}: schedule says {s}"
                last_sparsity = achieved
            else:
                assert achieved == last_sparsity, f"step {t}: sparsity moved off a rescoring"
    finally:
        handle.remove()
    assert not leaks, f"{len(leaks)} gradients of pruned weights reached the optimizer"
    assert last_sparsity == math.floor(TARGET * n) / n  # the ramp reached its target
