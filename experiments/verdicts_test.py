"""Paired verdicts against hand-computed values and scipy's own tests."""

import math

import pytest
from scipy import stats

from experiments import verdicts

# A shared seed effect (data order, init) much larger than the step's effect.
SEED_EFFECT = {0: 0.0, 1: 0.05, 2: -0.05}


def runs(base, diffs):
    """Reference values base + seed effect; the step's are those plus `diffs` per seed."""
    ref = {s: base + e for s, e in SEED_EFFECT.items()}
    return {s: ref[s] + d for s, d in zip(ref, diffs, strict=True)}, ref


def test_paired_numbers_are_those_of_ttest_rel_and_of_the_hand_formula():
    step, ref = runs(3.0, [-0.003, 0.001, -0.002])  # the RATIO step 16 against step 12 pattern
    v = verdicts.table({"s": step, "r": ref}, {"s": "r"}, lower_is_better=True)["s"]
    # By hand: d = (-3, 1, -2) e-3, mean -4/3 e-3, sd = sqrt(13/3) e-3, n = 3, df = 2.
    mean, se = -4 / 3 * 1e-3, math.sqrt(13 / 3) * 1e-3 / math.sqrt(3)
    t = mean / se
    # Student t with 2 degrees of freedom has closed forms for its tail and quantile.
    p_hand = 1 - abs(t) / math.sqrt(t * t + 2)
    q975 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    assert v.test == verdicts.PAIRED and v.reason == "" and (v.n, v.n_reference) == (3, 3)
    assert v.difference == pytest.approx(mean, rel=1e-12)
    assert v.p == pytest.approx(p_hand, rel=1e-9)
    assert (v.low, v.high) == pytest.approx((mean - q975 * se, mean + q975 * se), rel=1e-9)
    res = stats.ttest_rel(list(step.values()), list(ref.values()))
    ci = res.confidence_interval(0.95)
    assert v.p == pytest.approx(res.pvalue, rel=1e-9)
    assert (v.low, v.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert v.verdict == verdicts.NOT_RESOLVED and v.p_adjusted == pytest.approx(v.p)


def test_pairing_sees_a_small_effect_that_the_seed_spread_hides():
    step, ref = runs(3.0, [-0.010, -0.011, -0.009])
    v = verdicts.table({"s": step, "r": ref}, {"s": "r"}, lower_is_better=True)["s"]
    unpaired = stats.ttest_ind(list(step.values()), list(ref.values()), equal_var=False)
    assert unpaired.pvalue > 0.5  # the unpaired test cannot see it
    assert v.test == verdicts.PAIRED and v.p < 0.01
    assert v.high < 0 and v.verdict == verdicts.BETTER


def test_holm_adjusts_by_hand():
    got = verdicts.holm([0.01, 0.04, 0.03, None, 0.5])
    # sorted: 0.01 x 4 = 0.04; 0.03 x 3 = 0.09; 0.04 x 2 = 0.08 -> 0.09 (monotone); 0.5 x 1
    assert got == pytest.approx([0.04, 0.09, 0.09, None, 0.5])
    assert verdicts.holm([0.3, 0.6]) == [0.6, 0.6]  # capped at 1 and kept monotone
    assert verdicts.holm([]) == []


def test_holm_turns_a_marginal_step_unresolved_in_a_big_table_and_keeps_a_clear_one():
    marginal, ref = runs(3.0, [-0.75, -1.0, -1.25])  # t = -4 sqrt(3), p = 0.0202
    clear, _ = runs(3.0, [-1.0, -1.001, -0.999])  # t = -1000 sqrt(3)
    alone = verdicts.table({"m": marginal, "r": ref}, {"m": "r"}, lower_is_better=True)["m"]
    assert alone.p == pytest.approx(1 - 4 * math.sqrt(3) / math.sqrt(50), rel=1e-9)
    assert alone.verdict == verdicts.BETTER  # alone, p < 0.05
    nulls = {f"n{i}": runs(3.0, [0.1 * (i % 3 - 1), 0.2, -0.15])[0] for i in range(16)}
    all_runs = {"m": marginal, "c": clear, "r": ref, **nulls}
    table = verdicts.table(all_runs, verdicts.against("r", all_runs), lower_is_better=True)
    assert len(table) == 18
    assert table["c"].verdict == verdicts.BETTER
    assert table["c"].p_adjusted == pytest.approx(18 * table["c"].p, rel=1e-9)
    assert table["m"].p == pytest.approx(alone.p, rel=1e-12)
    assert table["m"].p_adjusted == pytest.approx(17 * alone.p, rel=1e-9)
    assert table["m"].verdict == verdicts.NOT_RESOLVED
    assert table["m"].high < 0  # its own interval still excludes zero
    assert all(table[n].verdict == verdicts.NOT_RESOLVED for n in nulls)


def test_direction_follows_lower_is_better():
    worse, ref = runs(0.9, [0.010, 0.011, 0.009])
    low = verdicts.table({"s": worse, "r": ref}, {"s": "r"}, lower_is_better=True)["s"]
    high = verdicts.table({"s": worse, "r": ref}, {"s": "r"}, lower_is_better=False)["s"]
    assert (low.verdict, high.verdict) == (verdicts.WORSE, verdicts.BETTER)


def test_one_seed_falls_back_to_welch_and_says_so():
    v = verdicts.table({"s": {0: 2.9}, "r": {0: 3.0}}, {"s": "r"}, lower_is_better=True)["s"]
    assert v.test == verdicts.WELCH and v.reason == "one seed (0): no pairs to test"
    assert v.difference == pytest.approx(-0.1)
    assert (v.low, v.high, v.p, v.p_adjusted) == (None, None, None, None)
    assert v.verdict == verdicts.NOT_RESOLVED and (v.n, v.n_reference) == (1, 1)


def test_unmatched_seeds_fall_back_to_welch_equal_to_scipy():
    step = {0: 2.80, 1: 2.86, 3: 2.83}
    ref = {0: 3.00, 1: 3.10, 2: 2.95, 4: 3.04}
    v = verdicts.table({"s": step, "r": ref}, {"s": "r"}, lower_is_better=True)["s"]
    assert v.test == verdicts.WELCH
    assert v.reason == "seeds differ: step ran [0, 1, 3], reference [0, 1, 2, 4]"
    res = stats.ttest_ind(list(step.values()), list(ref.values()), equal_var=False)
    ci = res.confidence_interval(0.95)
    assert v.p == pytest.approx(res.pvalue, rel=1e-9)
    assert (v.low, v.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert v.difference == pytest.approx(2.83 - 3.0225)
    assert (v.n, v.n_reference) == (3, 4) and v.verdict == verdicts.BETTER


def test_identical_pairs_are_not_resolved_and_constant_shifts_are():
    ref = {0: 1.0, 1: 2.0}
    same = verdicts.table({"s": dict(ref), "r": ref}, {"s": "r"}, lower_is_better=True)["s"]
    assert (same.p, same.verdict, same.low, same.high) == (1.0, verdicts.NOT_RESOLVED, 0.0, 0.0)
    shifted = {0: 0.5, 1: 1.5}
    v = verdicts.table({"s": shifted, "r": ref}, {"s": "r"}, lower_is_better=True)["s"]
    assert (v.p, v.verdict) == (0.0, verdicts.BETTER)


def test_to_dict_holds_every_field():
    step, ref = runs(3.0, [-0.010, -0.011, -0.009])
    d = verdicts.table({"s": step, "r": ref}, {"s": "r"}, lower_is_better=True)["s"].to_dict()
    assert set(d) == {
        "step",
        "reference",
        "difference",
        "low",
        "high",
        "p",
        "p_adjusted",
        "test",
        "verdict",
        "n",
        "n_reference",
        "reason",
    }
    assert d["verdict"] == "better" and d["test"] == "paired t" and d["n"] == 3


@pytest.mark.parametrize(
    "runs_, refs, lower, match",
    [
        ({"s": {0: 1.0}}, {"s": "r"}, True, r"step 'r' has no runs; accepted: 's'"),
        ({"s": {0: 1.0}}, {"s": "s"}, True, "'s' is its own reference"),
        ({"s": {0: float("nan")}, "r": {0: 1.0}}, {"s": "r"}, True, "value nan is invalid"),
        ({"s": {}, "r": {0: 1.0}}, {"s": "r"}, True, "non-empty mapping"),
        ({"s": {"0": 1.0}, "r": {0: 1.0}}, {"s": "r"}, True, "seed '0' is invalid"),
        ({"s": {0: 1.0}, "r": {0: 1.0}}, {"s": "r"}, "yes", "lower_is_better='yes'"),
    ],
)
def test_bad_input_names_the_value(runs_, refs, lower, match):
    with pytest.raises(ValueError, match=match):
        verdicts.table(runs_, refs, lower_is_better=lower)


def test_alpha_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match=r"alpha=1.5 is invalid; accepted: a number in \(0, 1\)"):
        verdicts.table({"s": {0: 1.0}, "r": {0: 1.0}}, {"s": "r"}, True, alpha=1.5)
