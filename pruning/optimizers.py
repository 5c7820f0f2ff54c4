"""The one optimizer factory: sgd, adam, adamw, adamwadv, adamwspam, and pruning around them.

`make_optimizer` builds any of them from a model, and wraps it in a pruner
when asked: AdamWPrune (adamwprune.py) around an Adam-family base, or
magnitude / movement pruning (masks.py) around any optimizer. adamwadv is
AdamW with AMSGrad; adamwspam adds SPAM (spam.py).

Optimizers here only update. `optimizer_step` is one update in the order
they expect: the optimizer's `before_clip()` hook if it has one (SPAM's spike
handling on raw gradients), the global gradient-norm clip, `step()`. The
trainer (experiments/trainer.py) calls it, and alone sets every group's
learning rate from its schedule (pruning/schedule.py
`lr_at`), times `restart_factor` when the optimizer has `lr_restarts`.
`GRAD_CLIP` is the reference's clip for the optimizers that come with one;
the caller puts it in its trainer's configuration.
"""

import torch

from pruning.adamwprune import AdamWPrune
from pruning.masks import with_pruning
from pruning.spam import AdamWSPAM

ADAM_FAMILY = ("adam", "adamw", "adamwadv", "adamwspam")
OPTIMIZERS = ("sgd", *ADAM_FAMILY, "adamwprune")

# The global gradient-norm clip the reference pairs with each optimizer (none: absent).
GRAD_CLIP = {"adamwadv": 1.0, "adamwspam": 1.0}


def param_groups(model, weight_decay):
    """nanoGPT's split: matrices decay, biases and norms do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def _base_optimizer(name, model, lr, weight_decay, betas):
    groups = param_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    return AdamWSPAM(groups, lr=lr, betas=betas, spam=name == "adamwspam")


def make_optimizer(
    name,
    model,
    lr=6e-4,
    weight_decay=0.1,
    betas=(0.9, 0.95),
    base="adamwspam",
    pruning=None,
):
    """Builds optimizer `name` for `model`, with pruning when `pruning` says so.

    For adamwprune, `base` is the Adam-family optimizer it wraps and `pruning`
    AdamWPrune's options (variant, target, warmup, ramp_end, frequency,
    dense_tied). For any other name, a `pruning` dict with "method"
    ("magnitude" or "movement") puts that pruner, with the dict's other
    options, around the optimizer.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; accepted: {', '.join(OPTIMIZERS)}")
    if name == "adamwprune":
        if base not in ADAM_FAMILY:
            raise ValueError(
                f"adamwprune cannot wrap {base!r}; accepted bases: {', '.join(ADAM_FAMILY)}"
            )
        inner = _base_optimizer(base, model, lr, weight_decay, betas)
        return AdamWPrune(inner, model, **(pruning or {}))
    opt = _base_optimizer(name, model, lr, weight_decay, betas)
    if pruning:
        opts = dict(pruning)
        method = opts.pop("method", None)
        if method is None:
            raise ValueError(
                f"pruning {pruning!r} around {name!r} needs a 'method' (magnitude or movement); "
                "AdamWPrune's variants need the optimizer name 'adamwprune'"
            )
        return with_pruning(opt, model, method, **opts)
    return opt


def optimizer_step(optimizer, params, grad_clip: float) -> None:
    """One update in the order these optimizers expect: `before_clip()` on the raw
    gradients (if the optimizer has it), the global clip at `grad_clip` (0: none),
    `step()`."""
    hook = getattr(optimizer, "before_clip", None)
    if hook is not None:
        hook()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
