"""The pruning methods one comparison puts side by side, each built from one shared schedule.

A comparison of pruning methods (GPT-2 at 50%: the old tree's headline) is
fair only when every method trains with the same optimizer hyperparameters,
the same pruning schedule and the same budget. `build(model, method, base,
schedule, ...)` makes the optimizer of any method in METHODS around any base
in BASES from one `schedule` dict, so the only thing that differs between
two of them is the method:

  none                the base optimizer alone (the dense reference)
  magnitude           MagnitudePruner (|w|, cubic ramp) around the base  (masks.py)
  movement            MovementPruner (W (W - W0), linear ramp) around it (masks.py)
  bitter7/8/9         AdamWPrune around the base, scoring from its state (adamwprune.py)

The schedule holds `target`, `warmup`, `ramp_end` and `frequency` (in
iterations; schedule.py `scaled` stretches one to a budget), and may hold
`dense_tied`; `none` takes the comparison's schedule and ignores it, or None.
Each method ramps in its own shape (cubic, movement linear), as the old tree
defines them; all reach `target` at `ramp_end`. Nothing
here lengthens a run: `scores.RUN_EXTENSION` (bitter3-9 trained 25% longer
in the old tree) is the caller's to apply or not, and a comparison at one
budget does not.
"""

from __future__ import annotations

from pruning import optimizers
from pruning.masks import PRUNERS

METHODS = ("none", "magnitude", "movement", "bitter7", "bitter8", "bitter9")
BASES = ("adamw", "adamwspam")
SCHEDULE_KEYS = ("target", "warmup", "ramp_end", "frequency")
OPTIONAL_KEYS = ("dense_tied",)


def _check(method: str, base: str, schedule: dict | None) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; accepted: {', '.join(METHODS)}")
    if base not in BASES:
        raise ValueError(f"unknown base optimizer {base!r}; accepted: {', '.join(BASES)}")
    if method == "none" and schedule is None:
        return  # the dense reference has nothing to schedule
    if not isinstance(schedule, dict):
        raise ValueError(f"schedule {schedule!r} is invalid; accepted: a dict")
    missing = [k for k in SCHEDULE_KEYS if k not in schedule]
    unknown = [k for k in schedule if k not in SCHEDULE_KEYS + OPTIONAL_KEYS]
    if missing or unknown:
        raise ValueError(
            f"schedule {schedule!r}: missing {missing}, unknown {unknown}; "
            f"accepted keys: {', '.join(SCHEDULE_KEYS + OPTIONAL_KEYS)}"
        )


def plan(method: str, base: str, schedule: dict | None) -> dict:
    """What `build` makes, as data for a run's record: optimizer, base, pruning options, clip.

    `grad_clip` is the trainer's global gradient-norm clip for this base
    (optimizers.GRAD_CLIP; 0 for none), the same for every method.
    """
    _check(method, base, schedule)
    # The reference's global gradient-norm clip goes with the base, so with every method.
    out = {"method": method, "base": base, "grad_clip": optimizers.GRAD_CLIP.get(base, 0.0)}
    if method == "none":
        return {**out, "optimizer": base, "pruning": None}
    if method in PRUNERS:
        return {**out, "optimizer": base, "pruning": {"method": method, **schedule}}
    return {**out, "optimizer": "adamwprune", "pruning": {"variant": method, **schedule}}


def build(
    model,
    method: str,
    base: str,
    schedule: dict | None,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.95),
):
    """The optimizer of `method` around `base` for `model`, pruning by `schedule`."""
    p = plan(method, base, schedule)
    return optimizers.make_optimizer(
        p["optimizer"],
        model,
        lr=lr,
        weight_decay=weight_decay,
        betas=betas,
        base=p["base"],
        pruning=p["pruning"],
    )
