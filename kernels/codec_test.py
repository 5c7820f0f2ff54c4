"""The shared header's number codecs (gpu_compat.h), run on the host, bit for bit against torch.

The same functions run inside the kernels; each library (KNLP_VENDOR=cuda or
rocm, set by the Bazel target) exports host copies for this test. Also checks
the split planner, a pure function of the library.
"""

import ctypes
import math
import os

import pytest
import torch

from kernels import library, reference

VENDOR = os.environ.get("KNLP_VENDOR", "cuda")


@pytest.fixture(scope="module")
def lib():
    return library.load(VENDOR)


def test_library_vendor(lib):
    assert lib.knlp_kernels_vendor().decode() == VENDOR


def encode(lib, x):
    x = x.contiguous().float()
    out = torch.empty(x.numel(), dtype=torch.uint8)
    lib.knlp_fp8_e4m3_encode_host(x.data_ptr(), out.data_ptr(), x.numel())
    return out


def encode_inputs():
    gen = torch.Generator().manual_seed(0)
    every_bf16 = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    every_bf16 = every_bf16.view(torch.bfloat16).float()  # includes inf and NaN
    codes = torch.arange(127, dtype=torch.uint8).view(reference.FP8).float()
    mids = (codes[1:] + codes[:-1]) / 2  # ties: must round to even
    ulp = torch.nextafter(mids, torch.full_like(mids, 1e9))
    below = torch.nextafter(mids, torch.full_like(mids, -1e9))
    mags = torch.exp2(torch.empty(1 << 20).uniform_(-24, 10, generator=gen))
    signs = torch.randint(0, 2, (1 << 20,), generator=gen) * 2 - 1
    edges = torch.tensor([448.0, 463.99, 464.0, 480.0, 1e6, 3.4e38, float("inf"), 2**-9, 2**-10])
    parts = [every_bf16, mids, ulp, below, mags * signs, edges]
    return torch.cat([p for part in parts for p in (part, -part)])


def test_fp8_encode_matches_torch(lib):
    x = encode_inputs()
    got = encode(lib, x)
    want = x.to(reference.FP8).view(torch.uint8)
    bad = (got != want).nonzero().flatten()
    assert bad.numel() == 0, [
        (x[i].item(), hex(got[i].item()), hex(want[i].item())) for i in bad[:10]
    ]


def test_fp8_decode_matches_torch(lib):
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    out = torch.empty(256, dtype=torch.float32)
    lib.knlp_fp8_e4m3_decode_host(codes.data_ptr(), out.data_ptr(), 256)
    want = codes.view(reference.FP8).float()
    assert torch.equal(out.isnan(), want.isnan())
    finite = ~want.isnan()
    assert torch.equal(out[finite], want[finite])
    assert torch.equal(out[finite].signbit(), want[finite].signbit())  # -0 stays -0


def test_bf16_round_matches_torch(lib):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1 << 18, generator=gen) * torch.exp2(
        torch.randint(-40, 40, (1 << 18,), generator=gen)
    )
    x = torch.cat([x, torch.tensor([float("inf"), -float("inf"), 3.4e38, 1e-45])])
    out = torch.empty(x.numel(), dtype=torch.int16)
    lib.knlp_bf16_round_host(x.data_ptr(), out.data_ptr(), x.numel())
    assert torch.equal(out, x.to(torch.bfloat16).view(torch.int16))


@pytest.mark.parametrize(
    "batch,kv_heads,max_len,sms,per_sm",
    [
        (1, 4, 32768, 132, 2),
        (1, 4, 8192, 132, 2),
        (32, 4, 2048, 132, 2),
        (8, 12, 8192, 108, 3),
        (1, 1, 1, 1, 1),
        (1, 1, 1 << 20, 132, 8),
    ],
)
def test_decode_plan_covers_the_sequence(lib, batch, kv_heads, max_len, sms, per_sm):
    splits, chunk = library.decode_plan(lib, batch, kv_heads, max_len, sms, per_sm)
    assert splits * chunk >= max_len > (splits - 1) * chunk
    assert chunk % 64 == 0 and 1 <= splits <= 256
    slots, blocks = sms * per_sm, batch * kv_heads
    if blocks >= slots:
        assert splits == 1, "the grid already fills the device: no split"
    else:
        # Enough splits to fill the resident slots, unless chunks would drop
        # under 128 tokens or splits pass 256; the chunk is the smallest
        # multiple of 64 that covers the sequence in that many splits.
        want = min(-(-slots // blocks), -(-max_len // 128), 256)
        per_split = math.ceil(max_len / want)
        assert chunk == math.ceil(per_split / 64) * 64, (want, chunk)
        assert splits <= want


def test_decode_plan_rejects_bad_shapes(lib):
    splits, chunk = ctypes.c_int(), ctypes.c_int()
    assert lib.knlp_decode_plan(0, 4, 100, 132, 2, ctypes.byref(splits), ctypes.byref(chunk)) != 0
    assert b"batch=0" in lib.knlp_last_error()
    assert lib.knlp_decode_plan(1, 4, 100, 132, 0, ctypes.byref(splits), ctypes.byref(chunk)) != 0
    assert b"blocks_per_sm=0" in lib.knlp_last_error()
