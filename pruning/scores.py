"""Importance scores for AdamWPrune: which weights to keep, from the Adam state.

w is the weight, m Adam's exp_avg, v its exp_avg_sq. Higher scores are kept.

    bitter0  |w m| |w| / (sqrt(v) + eps)
    bitter1  |w|
    bitter2  |w|                                   (with a 21% longer run)
    bitter3  |w| sqrt(|m| + eps)
    bitter4  bitter3, with layer-adaptive sparsity (see schedule.layer_sparsities)
    bitter5  sign(w) m / (sqrt(v) + eps) + 0.1 |w|
    bitter6  |w| sqrt(|m| + eps) sqrt(m^2 / (v + eps))
    bitter7  |w| (|v| + eps)^(1/4)
    bitter8  bitter7 in fp16 via two reciprocal square roots: rsqrt(rsqrt(x)) = x^(1/4)
    bitter9  bitter8 under torch.compile

bitter8 and bitter9 meant something else before mid-November 2025; those
meanings stay reachable as bitter8_mhat (|w| sqrt(|m / (1 - beta1^t)|)) and
bitter9_movement (|w| sqrt(|m|) - 0.1 w (w - w0), the movement term of
movement pruning), so old results can be reproduced.
"""

import functools

import torch

EPS = 1e-8


def bitter0(w, m, v, eps=EPS, **_):
    return (w * m).abs() * w.abs() / (v.sqrt() + eps)


def bitter1(w, m=None, v=None, **_):
    return w.abs()


bitter2 = bitter1


def bitter3(w, m, v=None, eps=EPS, **_):
    return w.abs() * (m.abs() + eps).sqrt()


bitter4 = bitter3


def bitter5(w, m, v, eps=EPS, **_):
    return torch.sign(w) * m / (v.sqrt() + eps) + 0.1 * w.abs()


def bitter6(w, m, v, eps=EPS, **_):
    return w.abs() * (m.abs() + eps).sqrt() * (m.square() / (v + eps)).sqrt()


def bitter7(w, m, v, eps=EPS, **_):
    return w.abs() * (v.abs() + eps).pow(0.25)


def bitter8(w, m, v, eps=EPS, **_):
    x = (v.abs() + eps).half()
    return (w.abs().half() * torch.rsqrt(torch.rsqrt(x))).float()


@functools.cache
def _compiled_bitter8():
    return torch.compile(bitter8, dynamic=True)


def bitter9(w, m, v, eps=EPS, **_):
    if w.is_meta:  # nothing to compile for shapes without values
        return bitter8(w, m, v, eps)
    return _compiled_bitter8()(w, m, v, eps)


def bitter8_mhat(w, m, v=None, step=1, beta1=0.9, **_):
    """The pre-November-2025 bitter8: |w| sqrt(|m_hat|), m_hat = m / (1 - beta1^t)."""
    return w.abs() * (m / (1 - beta1**step)).abs().sqrt()


def bitter9_movement(w, m, v=None, w0=None, **_):
    """The pre-November-2025 bitter9: |w| sqrt(|m|) - 0.1 w (w - w0)."""
    return w.abs() * m.abs().sqrt() - 0.1 * w * (w - w0)


SCORES = {
    "bitter0": bitter0,
    "bitter1": bitter1,
    "bitter2": bitter2,
    "bitter3": bitter3,
    "bitter4": bitter4,
    "bitter5": bitter5,
    "bitter6": bitter6,
    "bitter7": bitter7,
    "bitter8": bitter8,
    "bitter9": bitter9,
    "bitter8_mhat": bitter8_mhat,
    "bitter9_movement": bitter9_movement,
}

# How much longer than the base run a variant trains (bitter2: 21%, bitter3-9: 25%).
RUN_EXTENSION = {"bitter2": 1.21, **{f"bitter{i}": 1.25 for i in range(3, 10)}}

LAYER_ADAPTIVE = {"bitter4"}
NEEDS_W0 = {"bitter9_movement"}


def get_score(variant):
    if variant not in SCORES:
        raise ValueError(f"unknown pruning variant {variant!r}; accepted: {', '.join(SCORES)}")
    return SCORES[variant]
