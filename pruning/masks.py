"""Masks over every Linear and Conv2d weight, and the pruners that set them.

A pruner holds one boolean mask per prunable weight. Around each optimizer
step it multiplies the gradients by the masks (`before_step`) and afterwards
the weights (`after_step`), so a pruned weight stays exactly zero whatever the
optimizer's momentum or weight decay does. Every `frequency` steps from
`warmup` to `ramp_end` it rescores the weights and keeps the top (1 - s) of
them, s from the schedule; masks only ever shrink. As in the reference, a
Linear whose weight is tied to an embedding (GPT-2's lm_head) is pruned too,
so its zeros remove entries of the token embedding; `dense_tied=True` leaves
it dense instead (the project's earlier choice, see README.md).
"""

import abc

import torch
import torch.nn as nn

from pruning.schedule import layer_sparsities, sparsity_at


def prunable(model, dense_tied=False):
    """(name, weight) of every Linear and Conv2d weight, each shared weight once.

    dense_tied=True leaves out a weight tied to an nn.Embedding (GPT-2's lm_head).
    """
    tied = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    out, seen = [], set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            if dense_tied and id(module.weight) in tied:
                continue
            if id(module.weight) not in seen:
                seen.add(id(module.weight))
                out.append((f"{name}.weight", module.weight))
    return out


class Pruner(abc.ABC):
    """Base class: subclasses define `score(i, w)` and the ramp `shape`."""

    shape = "cubic"

    def __init__(
        self,
        model,
        target=0.5,
        warmup=1000,
        ramp_end=3000,
        frequency=50,
        layer_adaptive=False,
        dense_tied=False,
    ):
        sparsity_at(0, target, warmup, ramp_end, self.shape)  # validates target and shape
        if frequency < 1:
            raise ValueError(f"pruning frequency {frequency!r} is invalid; accepted: an int >= 1")
        pairs = prunable(model, dense_tied)
        if not pairs:
            raise ValueError("model has no Linear or Conv2d weight to prune")
        self.names = [name for name, _ in pairs]
        self.weights = [w for _, w in pairs]
        self.masks = [torch.ones_like(w, dtype=torch.bool) for w in self.weights]
        self.target, self.warmup, self.ramp_end, self.frequency = (
            target,
            warmup,
            ramp_end,
            frequency,
        )
        self.layer_adaptive = layer_adaptive
        self.t = 0

    @abc.abstractmethod
    def score(self, i, w):
        """Importance of weight tensor `i` (`w`); the lowest are pruned."""

    def current_sparsity(self):
        return sparsity_at(self.t, self.target, self.warmup, self.ramp_end, self.shape)

    def due(self):
        if self.t < self.warmup or self.t > self.ramp_end:
            return False
        return self.t % self.frequency == 0 or self.t == self.ramp_end

    @torch.no_grad()
    def before_step(self):
        for w, mask in zip(self.weights, self.masks, strict=True):
            if w.grad is not None:
                w.grad.mul_(mask)

    @torch.no_grad()
    def after_step(self):
        self.t += 1
        if self.due():
            self.update_masks(self.current_sparsity())
        for w, mask in zip(self.weights, self.masks, strict=True):
            w.mul_(mask)

    @torch.no_grad()
    def update_masks(self, s):
        """Keeps the top (1 - s) of the scores (per layer with layer_adaptive)."""
        scores = []
        for i, (w, mask) in enumerate(zip(self.weights, self.masks, strict=True)):
            sc = self.score(i, w).float()
            scores.append(torch.where(mask, sc, torch.full_like(sc, float("-inf"))))
        if self.layer_adaptive:
            for i, s_l in enumerate(layer_sparsities(s, len(scores))):
                self.masks[i] &= _keep_top(scores[i].flatten(), s_l).view_as(scores[i])
            return
        flat = torch.cat([sc.flatten() for sc in scores])
        keep = _keep_top(flat, s)
        offset = 0
        for i, sc in enumerate(scores):
            self.masks[i] &= keep[offset : offset + sc.numel()].view_as(sc)
            offset += sc.numel()

    def sparsity(self):
        """Fraction of prunable weights that are zero."""
        zeros = sum(int((w == 0).sum()) for w in self.weights)
        return zeros / sum(w.numel() for w in self.weights)

    def layer_sparsity(self):
        return [float((w == 0).float().mean()) for w in self.weights]

    def state_dict(self):
        return {"t": self.t, "masks": [m.clone() for m in self.masks]}

    def load_state_dict(self, state):
        self.t = state["t"]
        for mask, saved in zip(self.masks, state["masks"], strict=True):
            mask.copy_(saved)


def _keep_top(scores, s):
    """Boolean mask keeping exactly numel - floor(s numel) of the highest scores."""
    n = scores.numel()
    k = n - int(s * n)
    keep = torch.zeros(n, dtype=torch.bool, device=scores.device)
    if k > 0:
        keep[torch.topk(scores, k, sorted=False).indices] = True
    return keep


class MagnitudePruner(Pruner):
    """Keeps the largest |w| globally; cubic ramp."""

    shape = "cubic"

    def score(self, i, w):
        return w.abs()


class MovementPruner(Pruner):
    """Scores W (W - W0), W0 the weights when the pruner is built, as the reference; linear ramp."""

    shape = "linear"

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        self.w0 = [w.detach().clone() for w in self.weights]

    def score(self, i, w):
        return w * (w - self.w0[i])


class Pruned:
    """An optimizer with a pruner around its step; otherwise passes through."""

    def __init__(self, base, pruner):
        self.base, self.pruner = base, pruner

    @property
    def param_groups(self):
        return self.base.param_groups

    @property
    def state(self):
        return self.base.state

    @property
    def lr_restarts(self):
        return getattr(self.base, "lr_restarts", None)

    def before_clip(self):
        """The base optimizer's hook on raw gradients, if it has one (see spam.py)."""
        hook = getattr(self.base, "before_clip", None)
        if hook is not None:
            hook()

    def zero_grad(self, set_to_none=True):
        self.base.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        self.pruner.before_step()
        loss = self.base.step(closure)
        self.pruner.after_step()
        return loss

    def sparsity(self):
        return self.pruner.sparsity()

    def state_dict(self):
        return {"base": self.base.state_dict(), "pruner": self.pruner.state_dict()}

    def load_state_dict(self, state):
        self.base.load_state_dict(state["base"])
        self.pruner.load_state_dict(state["pruner"])


PRUNERS = {"magnitude": MagnitudePruner, "movement": MovementPruner}


def with_pruning(base, model, method, **kwargs):
    """Wraps any optimizer with magnitude or movement pruning."""
    if method not in PRUNERS:
        raise ValueError(f"unknown pruning method {method!r}; accepted: {', '.join(PRUNERS)}")
    return Pruned(base, PRUNERS[method](model, **kwargs))
