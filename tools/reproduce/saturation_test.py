"""The saturation fit recovers known parameters and reports R^2 honestly.

The data here are a test fixture: throughputs generated from chosen S_max and
K_m with multiplicative noise, never measurements.
"""

import numpy as np
import pytest

from tools.reproduce import saturation

BATCHES = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32], dtype=float)


def synthetic(s_max, k_m, noise, seed=0):
    rng = np.random.default_rng(seed)
    clean = saturation.saturation(BATCHES, s_max, k_m)
    return clean * (1 + noise * rng.standard_normal(len(BATCHES)))


@pytest.mark.parametrize("s_max,k_m", [(5200.0, 6.0), (900.0, 1.5), (20000.0, 20.0)])
def test_fit_recovers_the_parameters(s_max, k_m):
    fit = saturation.fit(BATCHES, synthetic(s_max, k_m, noise=0.02))
    assert fit.s_max == pytest.approx(s_max, rel=0.08)
    assert fit.k_m == pytest.approx(k_m, rel=0.2)
    assert fit.r2 > 0.97 and fit.points == len(BATCHES)


def test_exact_data_fit_exactly():
    fit = saturation.fit(BATCHES, saturation.saturation(BATCHES, 3000.0, 4.0))
    assert fit.s_max == pytest.approx(3000.0, rel=1e-5)
    assert fit.k_m == pytest.approx(4.0, rel=1e-4)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)


def test_data_that_do_not_saturate_give_a_low_r2():
    """Throughput that falls with batch size is not the model: R^2 must say so."""
    rng = np.random.default_rng(1)
    throughput = 4000.0 / BATCHES**0.3 * (1 + 0.3 * rng.standard_normal(len(BATCHES)))
    assert saturation.fit(BATCHES, np.abs(throughput)).r2 < 0.85


def test_too_few_batch_sizes_are_refused():
    with pytest.raises(saturation.FitError, match="at least 3 distinct batch sizes"):
        saturation.fit([1, 1, 2], [10.0, 11.0, 15.0])
    with pytest.raises(saturation.FitError, match="positive"):
        saturation.fit([1, 2, 4], [10.0, -1.0, 15.0])


def test_sweep_is_fitted_per_context():
    records = [
        {"batch": b, "context": t, "value": v}
        for t, (s_max, k_m) in {2048: (6000.0, 3.0), 32768: (1500.0, 9.0)}.items()
        for b, v in zip(BATCHES, synthetic(s_max, k_m, 0.01, seed=t), strict=True)
    ]
    fits = saturation.fit_sweep(records)
    assert list(fits) == [2048, 32768]
    assert fits[2048].s_max == pytest.approx(6000.0, rel=0.05)
    assert fits[32768].k_m == pytest.approx(9.0, rel=0.15)
