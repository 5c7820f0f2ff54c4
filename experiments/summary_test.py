"""The Steps table's paired verdicts, through the report: Holm over the whole table, each
step against its declared reference, and the unpaired fallback named as such."""

import math

import pytest
from scipy import stats

from experiments import report, testing
from experiments.results import read_json

SEEDS = (1337, 1338, 1339)
SEED_EFFECT = (0.0, 0.05, -0.05)  # what seed s shares across steps: data order, init
BASE = 2.0


def _runs(step, diffs, metric="val_loss"):
    """One result per seed: the reference's value plus `diffs` (0 for the reference)."""
    return [
        testing.run_result(
            f"{step}-s{seed}", seed=seed, values={metric: BASE + effect + d, "val_ppl": 1.0}
        )
        for seed, effect, d in zip(SEEDS, SEED_EFFECT, diffs, strict=True)
    ]


def _summary(tmp_path, results, reference, report_kind="language"):
    path = testing.write_experiment(
        tmp_path / "runs", results, reference=reference, report=report_kind
    )
    out = tmp_path / "report"
    report.write(report.load(path), str(out))
    s = read_json(str(out / "summary.json"))
    return {st["step"]: st for st in s["steps"]}, (out / "summary.md").read_text(), s


MARGINAL = (-0.0075, -0.0100, -0.0125)  # t = -4 sqrt(3): p = 0.0202 alone
CLEAR = (-0.0100, -0.01001, -0.00999)  # t = -1000 sqrt(3)


def test_a_marginal_step_is_better_alone(tmp_path):
    steps, md, _ = _summary(tmp_path, _runs("ref", (0, 0, 0)) + _runs("m", MARGINAL), "ref")
    m = steps["m"]
    assert m["p"] == pytest.approx(1 - 4 * math.sqrt(3) / math.sqrt(50), rel=1e-9)
    assert m["p_adjusted"] == pytest.approx(m["p"]) and m["vs_reference"] == "better"
    assert steps["ref"]["vs_reference"] == "reference" and steps["ref"]["p"] is None
    assert m["reference"] == "ref" and m["test"] == "paired t" and m["reason"] == ""


def test_holm_turns_the_marginal_step_unresolved_among_many_and_keeps_the_clear_one(tmp_path):
    results = _runs("ref", (0, 0, 0)) + _runs("m", MARGINAL) + _runs("c", CLEAR)
    nulls = [f"n{i:02d}" for i in range(16)]
    for i, name in enumerate(nulls):
        results += _runs(name, (0.001 * (i % 3 - 1), 0.002, -0.0015))
    steps, md, s = _summary(tmp_path, results, "ref")
    assert s["reference"] == "ref" and len(steps) == 19
    m, c = steps["m"], steps["c"]
    # The marginal step's own numbers are those of scipy's paired test ...
    ref = [BASE + e for e in SEED_EFFECT]
    res = stats.ttest_rel([r + d for r, d in zip(ref, MARGINAL, strict=True)], ref)
    ci = res.confidence_interval(0.95)
    assert m["difference"] == pytest.approx(-0.01, abs=1e-12)
    assert (m["low"], m["high"], m["p"]) == pytest.approx((ci.low, ci.high, res.pvalue), rel=1e-9)
    # ... but 18 comparisons are made: Holm multiplies its p (the second smallest) by 17.
    assert m["p_adjusted"] == pytest.approx(17 * m["p"], rel=1e-9)
    assert m["vs_reference"] == "not resolved" and m["high"] < 0  # its interval excludes 0
    assert c["p_adjusted"] == pytest.approx(18 * c["p"], rel=1e-9)
    assert c["vs_reference"] == "better"
    assert {steps[n]["vs_reference"] for n in nulls} == {"not resolved"}
    row = next(line for line in md.splitlines() if line.startswith("| m |"))
    cells = [x.strip() for x in row.split("|")[1:-1]]
    assert cells[4:9] == [
        "ref",
        f"-0.0100 [{m['low']:+.4f}, {m['high']:+.4f}]",
        f"{m['p_adjusted']:.3g}",
        "paired t",
        "not resolved",
    ]
    assert "Holm's correction over the 18 comparisons" in md
    assert "twice the pooled" not in md


def test_each_step_against_its_own_reference_with_one_correction(tmp_path):
    results = _runs("a-none", (0, 0, 0)) + _runs("a-x", CLEAR)
    results += _runs("b-none", (0.3, 0.3, 0.3)) + _runs("b-x", (0.3 + d for d in MARGINAL))
    mapping = {"a-x": "a-none", "b-x": "b-none"}
    steps, md, s = _summary(tmp_path, results, mapping, "language_pruning")
    assert s["reference"] == mapping
    assert (steps["a-x"]["reference"], steps["b-x"]["reference"]) == ("a-none", "b-none")
    assert steps["b-x"]["difference"] == pytest.approx(-0.01)  # against b-none, not a-none
    # One correction over both comparisons: the smaller p doubled, the larger kept.
    assert steps["a-x"]["p_adjusted"] == pytest.approx(2 * steps["a-x"]["p"], rel=1e-9)
    assert steps["b-x"]["p_adjusted"] == pytest.approx(steps["b-x"]["p"], rel=1e-9)
    assert {steps[n]["vs_reference"] for n in ("a-none", "b-none")} == {"reference"}
    assert "val ppl (mean ± std)" in md and "attention (mean ± std)" in md


def test_one_seed_falls_back_to_the_unpaired_test_and_says_so(tmp_path):
    results = [r for r in _runs("ref", (0, 0, 0)) + _runs("m", CLEAR) if r.seed == SEEDS[0]]
    steps, md, _ = _summary(tmp_path, results, "ref")
    m = steps["m"]
    assert m["test"] == "Welch t (unpaired)" and m["reason"] == "one seed (1337): no pairs to test"
    assert (m["low"], m["high"], m["p"], m["p_adjusted"]) == (None, None, None, None)
    assert m["vs_reference"] == "not resolved" and m["difference"] == pytest.approx(-0.01)
    assert "- Welch t (unpaired) for m: one seed (1337): no pairs to test" in md
    assert "| -0.0100 | - | Welch t (unpaired) | not resolved |" in md


def test_a_reference_outside_the_table_compares_nothing(tmp_path):
    steps, md, _ = _summary(tmp_path, _runs("m", CLEAR), "ref")  # --steps left ref out
    assert steps["m"]["vs_reference"] is None and steps["m"]["difference"] is None
    assert "difference [95% CI]" not in md
    with pytest.raises(ValueError, match=r"reference \['ref'\] is invalid; accepted: a step's"):
        _summary(tmp_path / "bad", _runs("m", CLEAR), ["ref"])
