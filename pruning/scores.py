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
    bitter8  |w16| rsqrt(rsqrt(|v16| + 1e-5)) in fp16 (w16, v16: w, v cast to fp16 first)
    bitter9  bitter8's expression inside a torch.compile'd helper

bitter8 and bitter9 meant something else before mid-November 2025; those
meanings stay reachable as bitter8_mhat and bitter9_movement, so old results
can be reproduced:

    bitter8_mhat      |w| sqrt(|m_hat| + eps), m_hat = m / ((1 - beta1^t) + eps)
    bitter9_movement  |w| sqrt(|m| + eps) + 0.1 sign(w) m / (sqrt(v) + eps)

Every expression, epsilon and cast is the reference's (the old tree's
lib/optimizers.py); pruning/README.md lists where the project differs.
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


FP16 = torch.float16
# bitter8/9's epsilon, added after the fp16 cast. Eager PyTorch casts a Python
# scalar to the tensor's dtype before adding it, so the sum uses fp16's 1e-5.
FP16_EPS = float(torch.tensor(1e-5, dtype=FP16))


def _fp16_fourth_root_score(w, v):
    """The reference's |w16| rsqrt(rsqrt(|v16| + 1e-5)), every fp16 rounding made explicit.

    Each operation is done in fp32 and rounded to fp16, which is what eager
    fp16 arithmetic does on a GPU and in the CPU's vectorized loops (the CPU's
    scalar tail rounds rsqrt differently, so eager fp16 on the CPU depends on
    the tensor's length). Written so, the result depends on nothing but the
    values, and torch.compile (which otherwise keeps fp32 intermediates) gives
    the same bits as eager.
    """
    v_abs = (v.to(FP16).abs().float() + FP16_EPS).to(FP16)
    root = torch.rsqrt(torch.rsqrt(v_abs.float()).to(FP16).float()).to(FP16)
    return (w.to(FP16).abs().float() * root.float()).to(FP16).float()


def bitter8(w, m, v, **_):
    return _fp16_fourth_root_score(w, v)


@functools.cache
def _compiled_fourth_root():
    # emulate_precision_casts: inductor keeps the fp16 roundings the expression asks for.
    return torch.compile(
        _fp16_fourth_root_score, dynamic=True, options={"emulate_precision_casts": True}
    )


def bitter9(w, m, v, **_):
    if w.is_meta:  # nothing to compile for shapes without values
        return _fp16_fourth_root_score(w, v)
    return _compiled_fourth_root()(w, v)


def bitter8_mhat(w, m, v=None, step=1, beta1=0.9, eps=EPS, **_):
    """The pre-November-2025 bitter8: |w| sqrt(|m_hat| + eps), m_hat = m / ((1 - beta1^t) + eps)."""
    m_hat = m / ((1 - beta1**step) + eps)
    return w.abs() * (m_hat.abs() + eps).sqrt()


def bitter9_movement(w, m, v, eps=EPS, **_):
    """The pre-November-2025 bitter9: |w| sqrt(|m| + eps) + 0.1 sign(w) m / (sqrt(v) + eps).

    The reference writes it as magnitude x gradient minus 0.1 movement, with
    movement = -(sign(w) m) / (sqrt(v) + eps); the operations keep its order,
    so the float rounding (and the mask at a tie) is the same.
    """
    return w.abs() * (m.abs() + eps).sqrt() + 0.1 * (torch.sign(w) * m / (v.sqrt() + eps))


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


def get_score(variant):
    if variant not in SCORES:
        raise ValueError(f"unknown pruning variant {variant!r}; accepted: {', '.join(SCORES)}")
    return SCORES[variant]
