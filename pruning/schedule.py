"""Schedules: the sparsity at step t, and the learning rate at iteration t.

Sparsity, p = clip((t - warmup) / (ramp_end - warmup), 0, 1):
cubic (magnitude, AdamWPrune): s = s_target * p^3
linear (movement):             s = s_target * p

Learning rate (`lr_at`, applied by the trainer alone): a linear warmup to lr,
then a cosine decay to min_lr at decay_iters; times `restart_factor` for an
optimizer that zeroes its moments every `interval` steps (SPAM), which
rises again from 0 to 1 over `warmup` steps after each reset on a half cosine.

A pruning schedule (warmup, ramp_end, frequency, in iterations) is declared
for one budget and run under another with `scaled`, the one place that
stretches it.
"""

import math

SHAPES = ("cubic", "linear")


def ramp_progress(t, warmup, ramp_end):
    if ramp_end <= warmup:
        return 1.0 if t >= warmup else 0.0
    return min(1.0, max(0.0, (t - warmup) / (ramp_end - warmup)))


def sparsity_at(t, target, warmup, ramp_end, shape="cubic"):
    """Target sparsity at step t (see the module docstring)."""
    if not 0.0 <= target < 1.0:
        raise ValueError(f"target sparsity {target!r} is invalid; accepted: 0 <= s < 1")
    if shape not in SHAPES:
        raise ValueError(f"unknown ramp shape {shape!r}; accepted: {', '.join(SHAPES)}")
    p = ramp_progress(t, warmup, ramp_end)
    return target * (p**3 if shape == "cubic" else p)


def layer_sparsities(target, n_layers, cap=0.95):
    """bitter4's layer-adaptive sparsity: s (0.7 + 0.6 l / (L - 1)), capped."""
    if n_layers == 1:
        return [min(cap, target)]
    return [min(cap, target * (0.7 + 0.6 * l / (n_layers - 1))) for l in range(n_layers)]


def lr_at(it, lr, min_lr, warmup, decay_iters, restarts=None):
    """Learning rate of iteration `it` (0-based); `restarts` is (interval, warmup) or None."""
    if it < warmup:
        out = lr * (it + 1) / (warmup + 1)
    elif it >= decay_iters:
        out = min_lr
    else:
        ratio = (it - warmup) / max(1, decay_iters - warmup)
        out = min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)
    return out * restart_factor(it, *restarts) if restarts else out


def restart_factor(it, interval, warmup):
    """LR multiplier at iteration `it` when moments are zeroed at it = interval, 2 interval, ..."""
    if it < interval or warmup < 1:
        return 1.0
    since = it % interval
    if since >= warmup:
        return 1.0
    return 0.5 * (1 - math.cos(math.pi * (since + 1) / warmup))


def scaled(pruning, iters, reference_iters):
    """A pruning schedule declared for `reference_iters` iterations, stretched to `iters`.

    warmup, ramp_end and frequency scale by iters / reference_iters (rounded);
    the ramp keeps at least one iteration and rescoring happens at least every
    iteration. Other keys (variant, target, method) pass through.
    """
    if not pruning:
        return None
    f = iters / reference_iters
    warmup = max(0, round(pruning["warmup"] * f))
    return dict(
        pruning,
        warmup=warmup,
        ramp_end=max(warmup + 1, round(pruning["ramp_end"] * f)),
        frequency=max(1, round(pruning["frequency"] * f)),
    )
