"""Paired verdicts: is a step better or worse than its reference, seed by seed?

A summary table compares each step with its reference (the step named in the
experiment's declaration). Seed s of every step shares its data order and the
initial value of every shared parameter, so the runs come in pairs, and the
test is on the paired differences d_s = step_s - reference_s:

  difference  mean(d), over the n seeds both ran
  interval    mean(d) -/+ t(0.975, n - 1) sd(d) / sqrt(n)   (Student t, 95%)
  p           two-sided, t = mean(d) / (sd(d) / sqrt(n)), n - 1 degrees of freedom

These are the numbers of `scipy.stats.ttest_rel(step, reference)`. When the
two did not run the same seeds, or ran only one, the pairs are not there:
the comparison says why (`reason`) and falls back to Welch's unpaired t-test
(`scipy.stats.ttest_ind(step, reference, equal_var=False)`), named as such
in `test`. With a single run on either side it has no variance to test
against: its interval and p are None and the verdict is "not resolved".

Holm's correction then runs over every comparison of one table that has a p
(m of them): the i-th smallest p becomes max over j <= i of
min(1, (m - j + 1) p_(j)). A comparison whose adjusted p is below `alpha`
(0.05) is "better" or "worse" by the sign of its difference and
`lower_is_better`; every other is "not resolved". The interval is the
comparison's own 95% interval, not adjusted: one that excludes zero can
still be "not resolved" when the table makes many comparisons.

Torch-free (numpy and scipy), so a summary can import it anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

PAIRED = "paired t"
WELCH = "Welch t (unpaired)"
BETTER, WORSE, NOT_RESOLVED = "better", "worse", "not resolved"
ALPHA = 0.05
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Verdict:
    """One step against its reference: the effect, its interval, the test and the decision."""

    step: str
    reference: str
    difference: float  # mean of step - reference (paired), or difference of the means
    low: float | None  # the 95% interval of `difference`; None when it cannot be estimated
    high: float | None
    p: float | None  # two-sided, before the correction
    p_adjusted: float | None  # after Holm's correction over the table
    test: str  # PAIRED or WELCH
    verdict: str  # BETTER, WORSE or NOT_RESOLVED
    n: int  # runs of the step (the number of pairs for the paired test)
    n_reference: int
    reason: str  # why the unpaired test was used; empty for the paired one

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Test:
    difference: float
    low: float | None
    high: float | None
    p: float | None
    test: str
    n: int
    n_reference: int
    reason: str


def _finite(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _checked(name: str, runs: Mapping[int, float]) -> dict[int, float]:
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError(
            f"step {name!r} has runs {runs!r}; accepted: a non-empty mapping seed -> value"
        )
    out = {}
    for seed, value in runs.items():
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"step {name!r}: seed {seed!r} is invalid; accepted: an int")
        if not _finite(value):
            raise ValueError(
                f"step {name!r}, seed {seed}: value {value!r} is invalid; accepted: a finite number"
            )
        out[seed] = float(value)
    return out


def _interval(mean: float, se: float, df: float) -> tuple[float, float]:
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * se
    return mean - half, mean + half


def _p(mean: float, se: float, df: float) -> float:
    if se == 0.0:  # every pair differs by the same amount
        return 1.0 if mean == 0.0 else 0.0
    return float(2.0 * stats.t.sf(abs(mean / se), df))


def paired(step: Mapping[int, float], reference: Mapping[int, float]) -> _Test:
    """The paired t-test over the seeds both ran (they must be the same, at least two)."""
    seeds = sorted(step)
    d = np.array([step[s] - reference[s] for s in seeds])
    n = len(d)
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n)
    low, high = _interval(mean, se, n - 1)
    return _Test(mean, low, high, _p(mean, se, n - 1), PAIRED, n, n, "")


def welch(step: Mapping[int, float], reference: Mapping[int, float], reason: str) -> _Test:
    """Welch's unpaired t-test (Welch-Satterthwaite degrees of freedom)."""
    a, b = np.array(list(step.values())), np.array(list(reference.values()))
    mean = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return _Test(mean, None, None, None, WELCH, len(a), len(b), reason)
    va, vb = float(a.var(ddof=1)) / len(a), float(b.var(ddof=1)) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        df = float(len(a) + len(b) - 2)
    else:
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    low, high = _interval(mean, se, df)
    return _Test(mean, low, high, _p(mean, se, df), WELCH, len(a), len(b), reason)


def compare(step: Mapping[int, float], reference: Mapping[int, float]) -> _Test:
    """Paired when both ran the same two or more seeds; otherwise Welch, saying why."""
    if set(step) != set(reference):
        reason = f"seeds differ: step ran {sorted(step)}, reference {sorted(reference)}"
        return welch(step, reference, reason)
    if len(step) < 2:
        return welch(step, reference, f"one seed ({next(iter(step))}): no pairs to test")
    return paired(step, reference)


def holm(ps: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, over the entries that are not None."""
    tested = sorted((p, i) for i, p in enumerate(ps) if p is not None)
    m, out, running = len(tested), list(ps), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def _decide(difference: float, p_adjusted: float | None, lower_is_better: bool, alpha: float):
    if p_adjusted is None or p_adjusted >= alpha:
        return NOT_RESOLVED
    return BETTER if (difference < 0) == lower_is_better else WORSE


def table(
    runs: Mapping[str, Mapping[int, float]],
    references: Mapping[str, str],
    lower_is_better: bool,
    alpha: float = ALPHA,
) -> dict[str, Verdict]:
    """The verdict of every step in `references` (step -> its reference), Holm over all of them.

    `runs` holds each step's values by seed (validation loss, accuracy, ...);
    a step may not be its own reference.
    """
    if not isinstance(lower_is_better, bool):
        raise ValueError(f"lower_is_better={lower_is_better!r} is invalid; accepted: True, False")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha!r} is invalid; accepted: a number in (0, 1)")
    checked = {name: _checked(name, values) for name, values in runs.items()}
    for step, ref in references.items():
        for name in (step, ref):
            if name not in checked:
                raise ValueError(
                    f"step {name!r} has no runs; accepted: {', '.join(map(repr, checked))}"
                )
        if step == ref:
            raise ValueError(f"step {step!r} is its own reference; accepted: another step")
    tests = {step: compare(checked[step], checked[ref]) for step, ref in references.items()}
    adjusted = dict(zip(tests, holm([t.p for t in tests.values()]), strict=True))
    return {
        step: Verdict(
            step=step,
            reference=references[step],
            difference=t.difference,
            low=t.low,
            high=t.high,
            p=t.p,
            p_adjusted=adjusted[step],
            test=t.test,
            verdict=_decide(t.difference, adjusted[step], lower_is_better, alpha),
            n=t.n,
            n_reference=t.n_reference,
            reason=t.reason,
        )
        for step, t in tests.items()
    }


def against(reference: str, steps) -> dict[str, str]:
    """step -> reference for every step but the reference itself (one reference per table)."""
    return {step: reference for step in steps if step != reference}
