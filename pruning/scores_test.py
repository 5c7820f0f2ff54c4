"""Each score against values computed by hand (see the comments) on three weights."""

import pytest
import torch

from pruning import scores

W = torch.tensor([-2.0, 1.0, 0.5])
M = torch.tensor([0.1, -0.2, 0.4])
V = torch.tensor([0.04, 0.01, 0.16])  # sqrt(v) = [0.2, 0.1, 0.4]; v^(1/4) = sqrt of that

# eps = 0 so the hand arithmetic is exact.
EXPECTED = {
    # |w m| |w| / sqrt(v) = [0.2*2/0.2, 0.2*1/0.1, 0.2*0.5/0.4]
    "bitter0": [2.0, 2.0, 0.25],
    "bitter1": [2.0, 1.0, 0.5],
    "bitter2": [2.0, 1.0, 0.5],
    # |w| sqrt|m| = [2 sqrt(.1), sqrt(.2), .5 sqrt(.4)]
    "bitter3": [0.632456, 0.447214, 0.316228],
    "bitter4": [0.632456, 0.447214, 0.316228],
    # sign(w) m / sqrt(v) + 0.1 |w| = [-0.5 + 0.2, -2 + 0.1, 1 + 0.05]
    "bitter5": [-0.3, -1.9, 1.05],
    # bitter3 * sqrt(m^2 / v) = bitter3 * [0.5, 2, 1]
    "bitter6": [0.316228, 0.894427, 0.316228],
    # |w| v^(1/4) = [2 sqrt(.2), sqrt(.1), .5 sqrt(.4)]
    "bitter7": [0.894427, 0.316228, 0.316228],
}


@pytest.mark.parametrize("name", EXPECTED)
def test_score_by_hand(name):
    got = scores.SCORES[name](W, M, V, eps=0.0)
    torch.testing.assert_close(got, torch.tensor(EXPECTED[name]), rtol=1e-5, atol=1e-6)


def test_default_eps_changes_little():
    torch.testing.assert_close(
        scores.bitter7(W, M, V), torch.tensor(EXPECTED["bitter7"]), rtol=1e-4, atol=1e-6
    )


def test_bitter8_is_bitter7_in_fp16():
    got = scores.bitter8(W, M, V, eps=0.0)
    assert got.dtype == torch.float32  # ranked in fp32, computed in fp16
    torch.testing.assert_close(got, torch.tensor(EXPECTED["bitter7"]), rtol=2e-3, atol=1e-4)
    # the fp16 path is really taken: a second moment below fp16's range vanishes
    assert scores.bitter8(W, M, torch.full((3,), 1e-12), eps=0.0).eq(0).all()
    assert scores.bitter7(W, M, torch.full((3,), 1e-12), eps=0.0).gt(0).all()


def test_bitter9_is_compiled_bitter8():
    got = scores.bitter9(W, M, V, eps=0.0)
    torch.testing.assert_close(got, scores.bitter8(W, M, V, eps=0.0), rtol=1e-3, atol=1e-4)
    assert scores._compiled_bitter8.cache_info().currsize == 1


def test_legacy_bitter8_uses_bias_corrected_momentum():
    # m_hat = m / (1 - 0.9^1) = [1, -2, 4]; |w| sqrt|m_hat| = [2, sqrt(2), 1]
    got = scores.bitter8_mhat(W, M, V, step=1, beta1=0.9)
    torch.testing.assert_close(got, torch.tensor([2.0, 1.414214, 1.0]))


def test_legacy_bitter9_subtracts_movement():
    w0 = torch.tensor([-1.0, 1.0, 1.0])
    # |w| sqrt|m| - 0.1 w (w - w0) = bitter3 - 0.1 [2, 0, -0.25]
    got = scores.bitter9_movement(W, M, V, w0=w0)
    torch.testing.assert_close(got, torch.tensor([0.432456, 0.447214, 0.341228]))


def test_unknown_variant_lists_accepted():
    with pytest.raises(ValueError, match="bitter10.*accepted: bitter0, bitter1"):
        scores.get_score("bitter10")


def test_run_extensions():
    assert scores.RUN_EXTENSION["bitter2"] == 1.21
    assert all(scores.RUN_EXTENSION[f"bitter{i}"] == 1.25 for i in range(3, 10))
