"""Sparsity schedules: how much of the prunable weight is zero at step t.

p = clip((t - warmup) / (ramp_end - warmup), 0, 1)
cubic (magnitude, AdamWPrune): s = s_target * p^3
linear (movement):             s = s_target * p
"""

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
