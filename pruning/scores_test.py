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


def test_bitter8_in_fp16_by_hand():
    # Each op in fp32, rounded to fp16. v = 0.04 is 0.0400085 in fp16; + 1e-5 rounds
    # back to it; rsqrt 4.99947 -> 5.0; rsqrt(5) = 0.4472136 -> 0.44726562 (1832 x
    # 2^-12); times |w| = 2. v = 0.01 is 0.0100021, + 1e-5 -> 0.0100098; rsqrt
    # 9.99512 -> 9.9921875 (1279 x 2^-7); rsqrt -> 0.3163535 -> 0.31640625 (1296 x 2^-12).
    got = scores.bitter8(W, M, V)
    assert got.dtype == torch.float32  # ranked in fp32, computed in fp16
    assert got.tolist() == [0.89453125, 0.31640625, 0.316162109375]


def test_bitter8_survives_fp16_underflow():
    # v = 1e-9 is 0 in fp16 (smallest subnormal 6e-8); the epsilon is added after the
    # cast: 1e-5 -> 1.00136e-5 (168 x 2^-24); rsqrt 316.01 -> 316.0; rsqrt(316) =
    # 0.0562544 -> 0.0562439 (1843 x 2^-15); times |w| = [2, 1, 0.5]. Adding 1e-8
    # before the cast instead gives 0 for every weight.
    got = scores.bitter8(W, M, torch.full((3,), 1e-9))
    assert got.tolist() == [0.11248779296875, 0.056243896484375, 0.0281219482421875]


def test_bitter9_compiled_equals_eager_bitter8():
    torch.manual_seed(0)
    w = torch.randn(4096)
    v = torch.rand(4096) ** 6 * 1e-2  # second moments over many fp16 binades
    v[:64] = 1e-9
    assert torch.equal(scores.bitter9(w, None, v), scores.bitter8(w, None, v))
    assert scores._compiled_fourth_root.cache_info().currsize == 1


def test_legacy_bitter8_epsilons_by_hand():
    # float64, so the reference's epsilons show: m_hat = m / (0.1 + 1e-8);
    # |w| sqrt(|m_hat| + 1e-8) = [2 sqrt(0.99999990 + 1e-8), sqrt(1e-8), 0.5 sqrt(1.1e-7)]
    w = torch.tensor([-2.0, 1.0, 0.5], dtype=torch.float64)
    m = torch.tensor([0.1, 0.0, 1e-8], dtype=torch.float64)
    got = scores.bitter8_mhat(w, m, None, step=1, beta1=0.9)
    want = torch.tensor([1.999999910000008, 1e-4, 1.6583123197998697e-4], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_legacy_bitter9_adds_the_adam_direction():
    # |w| sqrt|m| + 0.1 sign(w) m / sqrt(v) = bitter3 + 0.1 [-0.5, -2, 1]
    got = scores.bitter9_movement(W, M, V, eps=0.0)
    torch.testing.assert_close(got, torch.tensor([0.582456, 0.247214, 0.416228]))


def test_unknown_variant_lists_accepted():
    with pytest.raises(ValueError, match="bitter10.*accepted: bitter0, bitter1"):
        scores.get_score("bitter10")


def test_run_extensions():
    assert scores.RUN_EXTENSION["bitter2"] == 1.21
    assert all(scores.RUN_EXTENSION[f"bitter{i}"] == 1.25 for i in range(3, 10))


def test_bitter8_rounds_v_plus_eps_to_fp16_before_the_root():
    # v = 0.0058746337890625 (exact in fp16) + 1e-5 = 0.00588463 is 1542.6 x 2^-18,
    # rounded to 1543 x 2^-18 = 0.00588608; rsqrt 13.0343 -> 13.03125 (1668 x 2^-7);
    # rsqrt 0.277016 -> 0.277099609375 (1135 x 2^-12). Without the first rounding:
    # rsqrt 13.0359 -> 13.0390625, then 0.276932 -> 0.27685546875.
    got = scores.bitter8(torch.ones(1), None, torch.tensor([0.0058746337890625]))
    assert got.tolist() == [0.277099609375]


def test_bitter9_on_the_meta_device_needs_no_values():
    w, v = torch.empty(2, 3, device="meta"), torch.empty(2, 3, device="meta")
    got = scores.bitter9(w, None, v)
    assert got.is_meta and got.shape == (2, 3)
