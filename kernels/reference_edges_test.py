"""Cases of kernels/reference.py that the mutation run (//tools:mutation) found
untested: V rows whose largest magnitude is below 1 still use fp8's full range."""

import pytest
import torch

from kernels.reference import FP8_MAX, dequantize_v, quantize_v


@pytest.mark.parametrize("amax", [0.5, 1.0, 3e-3])
def test_small_v_is_scaled_to_the_fp8_range(amax):
    v = torch.tensor([[amax, -amax / 2, amax / 4, 0.0]], dtype=torch.bfloat16)
    codes, scale = quantize_v(v)
    assert scale.item() == pytest.approx(v.float().abs().max().item() / FP8_MAX)
    assert codes.float().abs().max().item() == FP8_MAX
    torch.testing.assert_close(dequantize_v(codes, scale), v.float(), rtol=0.07, atol=0)


def test_all_zero_v_has_scale_one():
    codes, scale = quantize_v(torch.zeros(2, 8, dtype=torch.bfloat16))
    assert scale.tolist() == [1.0, 1.0]
    assert codes.float().abs().sum().item() == 0.0
