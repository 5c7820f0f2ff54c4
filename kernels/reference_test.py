"""The PyTorch reference (reference.py) and the CPU ops against straightforward float math.

The "straightforward" side uses no torch fp8 conversion: e4m3 rounding is
done here by listing every finite e4m3 value and taking the nearest (ties to
the even code), and attention is summed in float64 loops.
"""

import math
import random

import numpy as np
import pytest
import torch

from kernels import ops, reference

# ---- straightforward fp8 e4m3 -------------------------------------------------


def e4m3_value(code):
    """The value of a finite e4m3fn code 0..126 (positive half)."""
    exp, man = code >> 3, code & 7
    if exp == 0:
        return man / 8 * 2.0**-6
    return (1 + man / 8) * 2.0 ** (exp - 7)


E4M3_VALUES = [e4m3_value(c) for c in range(127)]  # 127 = 0x7f is NaN


def e4m3_round(x):
    """x rounded to the nearest e4m3 value, ties to the even code; |x| <= 448."""
    mag = abs(x)
    best = min(range(127), key=lambda c: (abs(E4M3_VALUES[c] - mag), c & 1))
    return math.copysign(E4M3_VALUES[best], x)


def test_e4m3_table_matches_torch():
    codes = torch.arange(127, dtype=torch.uint8).view(reference.FP8)
    assert codes.float().tolist() == E4M3_VALUES
    assert E4M3_VALUES[126] == 448.0


def test_fp8_rounding_matches_straightforward_rounding():
    rng = random.Random(0)
    xs = [rng.uniform(-448, 448) for _ in range(2000)]
    xs += [rng.uniform(-0.05, 0.05) for _ in range(2000)]  # subnormals and small normals
    # Exact midpoints between neighbouring codes: ties must go to the even code.
    xs += [(E4M3_VALUES[c] + E4M3_VALUES[c + 1]) / 2 for c in range(126)]
    xs += [-(E4M3_VALUES[c] + E4M3_VALUES[c + 1]) / 2 for c in range(126)]
    got = torch.tensor(xs, dtype=torch.float32).to(reference.FP8).float().tolist()
    want = [e4m3_round(float(np.float32(x))) for x in xs]
    assert got == want


# ---- the KV writer ----------------------------------------------------------------


def make_cache(slabs, rows, hkv, d):
    return (
        torch.zeros(slabs, rows, hkv, d, dtype=torch.bfloat16),
        torch.zeros(slabs, rows, hkv, d, dtype=reference.FP8),
        torch.zeros(slabs, rows, hkv, dtype=torch.float32),
    )


def test_kv_write_matches_straightforward_quantization():
    torch.manual_seed(0)
    n, hkv, d = 5, 2, 16
    k = torch.randn(n, hkv, d).to(torch.bfloat16)
    v = (torch.randn(n, hkv, d) * 3).to(torch.bfloat16)
    v[2, 1] = 0  # an all-zero head: scale 1, codes 0
    slots = torch.tensor([3, 0, 7, -1, 5])  # -1: padding, not written
    k_cache, v_cache, v_scale = make_cache(2, 4, hkv, d)
    torch.ops.knlp.kv_write(k, v, slots, k_cache, v_cache, v_scale)

    k_rows, v_rows, s_rows = (
        k_cache.view(-1, hkv, d),
        v_cache.view(-1, hkv, d),
        v_scale.view(-1, hkv),
    )
    for i, slot in enumerate(slots.tolist()):
        if slot < 0:
            continue
        assert torch.equal(k_rows[slot].view(torch.int16), k[i].view(torch.int16))  # bit-exact
        for h in range(hkv):
            vals = [float(x) for x in v[i, h].float()]
            amax = np.float32(max(abs(x) for x in vals))
            scale = np.float32(amax / np.float32(448)) if amax > 0 else np.float32(1)
            assert s_rows[slot, h].item() == float(scale)
            want = [e4m3_round(float(np.float32(x) / scale)) for x in vals]
            assert v_rows[slot, h].float().tolist() == want
    written = {s for s in slots.tolist() if s >= 0}
    for slot in set(range(8)) - written:
        assert not k_rows[slot].any() and not v_rows[slot].float().any()


# ---- decode attention --------------------------------------------------------------


def straightforward_decode(q, k_rows, codes, scales, seq_slots, softmax_scale):
    """float64 loops: o_h = sum_t softmax_t(q_h . k_t * scale) * (code_t * s_t)."""
    hq, d = q.shape
    hkv = k_rows.shape[1]
    group = hq // hkv
    out = np.zeros((hq, d))
    qf, kf = q.double().numpy(), k_rows.double().numpy()
    vf = codes.float().double().numpy() * scales.double().numpy()[..., None]
    for h in range(hq):
        g = h // group
        logits = [float(qf[h] @ kf[t, g]) * softmax_scale for t in seq_slots]
        m = max(logits)
        w = [math.exp(x - m) for x in logits]
        total = sum(w)
        for wi, t in zip(w, seq_slots, strict=True):
            out[h] += wi / total * vf[t, g]
    return out


def random_sequences(bsz, hq, hkv, d, lens, page_size=None, seed=0):
    """Random q and a filled cache, contiguous or paged (pages in shuffled order)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(bsz, hq, d, generator=gen).to(torch.bfloat16)
    k = torch.randn(sum(lens), hkv, d, generator=gen).to(torch.bfloat16)
    v = (torch.randn(sum(lens), hkv, d, generator=gen) * 2).to(torch.bfloat16)
    t_max = max(lens)
    if page_size is None:
        k_cache, v_cache, v_scale = make_cache(bsz, t_max, hkv, d)
        slots = [[b * t_max + t for t in range(n)] for b, n in enumerate(lens)]
        table = None
    else:
        per_seq = -(-t_max // page_size)
        pages = torch.randperm(bsz * per_seq, generator=gen)
        table = pages.view(bsz, per_seq).to(torch.int32)
        k_cache, v_cache, v_scale = make_cache(bsz * per_seq, page_size, hkv, d)
        slots = [
            [int(table[b, t // page_size]) * page_size + t % page_size for t in range(n)]
            for b, n in enumerate(lens)
        ]
    flat = [s for seq in slots for s in seq]
    torch.ops.knlp.kv_write(k, v, torch.tensor(flat), k_cache, v_cache, v_scale)
    return q, k_cache, v_cache, v_scale, torch.tensor(lens, dtype=torch.int32), table, slots


@pytest.mark.parametrize("page_size", [None, 4])
@pytest.mark.parametrize("hq,hkv", [(4, 4), (6, 2)])
def test_decode_matches_straightforward_attention(page_size, hq, hkv):
    d, lens = 16, [9, 3, 1]
    q, k_cache, v_cache, v_scale, seq_lens, table, slots = random_sequences(
        3, hq, hkv, d, lens, page_size
    )
    scale = ops.default_scale(d)
    out = torch.ops.knlp.decode_attention(
        q, k_cache, v_cache, v_scale, seq_lens, table, max(lens), scale
    )
    assert out.dtype == torch.bfloat16 and out.shape == q.shape
    k_rows, codes, scales = (
        k_cache.view(-1, hkv, d),
        v_cache.view(-1, hkv, d),
        v_scale.view(-1, hkv),
    )
    for b in range(3):
        want = straightforward_decode(q[b], k_rows, codes, scales, slots[b], scale)
        # The reference sums in float32 and rounds the output to bf16 (2^-9 relative).
        np.testing.assert_allclose(out[b].double().numpy(), want, rtol=2**-8, atol=1e-4)


def test_paged_and_contiguous_layouts_agree():
    lens = [13, 7]
    contiguous = random_sequences(2, 8, 2, 16, lens, None, seed=3)
    paged = random_sequences(2, 8, 2, 16, lens, 4, seed=3)
    outs = [
        torch.ops.knlp.decode_attention(*case[:6], max(lens), 0.25) for case in (contiguous, paged)
    ]
    assert torch.equal(outs[0], outs[1])


def test_fp8_v_stays_close_to_bf16_attention():
    """End to end: quantizing V costs about fp8's precision (2^-4 relative), no more."""
    torch.manual_seed(1)
    bsz, hq, hkv, d, n = 2, 8, 2, 64, 50
    q = torch.randn(bsz, hq, d).to(torch.bfloat16)
    k = torch.randn(bsz, n, hkv, d).to(torch.bfloat16)
    v = torch.randn(bsz, n, hkv, d).to(torch.bfloat16)
    k_cache, v_cache, v_scale = make_cache(bsz, n, hkv, d)
    torch.ops.knlp.kv_write(
        k.view(-1, hkv, d), v.view(-1, hkv, d), torch.arange(bsz * n), k_cache, v_cache, v_scale
    )
    seq_lens = torch.full((bsz,), n, dtype=torch.int32)
    out = torch.ops.knlp.decode_attention(
        q, k_cache, v_cache, v_scale, seq_lens, None, n, ops.default_scale(d)
    )
    exact = torch.nn.functional.scaled_dot_product_attention(
        q.float().unsqueeze(2),
        k.float().transpose(1, 2),
        v.float().transpose(1, 2),
        enable_gqa=True,
    ).squeeze(2)
    rel = (out.float() - exact).norm() / exact.norm()
    assert 1e-4 < rel < 0.05  # nonzero: V really went through fp8


def test_empty_sequence_gives_zeros():
    q, k_cache, v_cache, v_scale, _, _, _ = random_sequences(2, 2, 2, 8, [3, 3])
    seq_lens = torch.tensor([0, 3], dtype=torch.int32)
    out = torch.ops.knlp.decode_attention(q, k_cache, v_cache, v_scale, seq_lens, None, 3, 0.3)
    assert not out[0].float().any() and out[1].float().abs().sum() > 0


# ---- bad input ----------------------------------------------------------------------


def test_bad_inputs_name_the_value():
    q, k_cache, v_cache, v_scale, seq_lens, _, _ = random_sequences(2, 4, 2, 8, [3, 2])
    with pytest.raises(ValueError, match="k_cache dtype torch.float32"):
        torch.ops.knlp.decode_attention(
            q, k_cache.float(), v_cache, v_scale, seq_lens, None, 3, 1.0
        )
    with pytest.raises(ValueError, match=r"max_seq_len 4 must be in 1..3"):
        torch.ops.knlp.decode_attention(q, k_cache, v_cache, v_scale, seq_lens, None, 4, 1.0)
    with pytest.raises(ValueError, match="q heads 3 must be a multiple of kv heads 2"):
        torch.ops.knlp.decode_attention(q[:, :3], k_cache, v_cache, v_scale, seq_lens, None, 3, 1.0)
    with pytest.raises(ValueError, match="seq_lens must be int32"):
        torch.ops.knlp.decode_attention(q, k_cache, v_cache, v_scale, seq_lens.long(), None, 3, 1.0)
    k = torch.zeros(1, 2, 8, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="slot_mapping must be int64"):
        torch.ops.knlp.kv_write(k, k, torch.zeros(1, dtype=torch.int32), k_cache, v_cache, v_scale)


# Cases the mutation run (//tools:mutation -- kernels/ops.py) found untested.


@pytest.mark.parametrize("name", ["k_cache", "v_cache", "v_scale"])
def test_a_strided_cache_is_refused_by_name(name):
    q, k_cache, v_cache, v_scale, seq_lens, _, _ = random_sequences(2, 4, 2, 8, [3, 2])
    cache = {"k_cache": k_cache, "v_cache": v_cache, "v_scale": v_scale}
    # The same shape and values in transposed storage.
    cache[name] = cache[name].transpose(0, 1).contiguous().transpose(0, 1)
    assert not cache[name].is_contiguous()
    with pytest.raises(ValueError, match=rf"^{name} must be contiguous$"):
        torch.ops.knlp.decode_attention(q, *cache.values(), seq_lens, None, 3, 1.0)


def test_a_one_token_cache_returns_its_v():
    # max_seq_len 1 is the smallest accepted: softmax over one token is 1, so
    # each q head gets its kv head's dequantized V.
    q, k_cache, v_cache, v_scale, seq_lens, _, _ = random_sequences(2, 4, 2, 8, [1, 1])
    out = torch.ops.knlp.decode_attention(q, k_cache, v_cache, v_scale, seq_lens, None, 1, 0.3)
    v = reference.dequantize_v(v_cache[:, 0], v_scale[:, 0]).repeat_interleave(2, dim=1)
    assert torch.equal(out, v.to(torch.bfloat16))
    with pytest.raises(ValueError, match=r"max_seq_len 0 must be in 1\.\.1"):
        torch.ops.knlp.decode_attention(q, k_cache, v_cache, v_scale, seq_lens, None, 0, 0.3)


def test_v_scale_shape_error_names_the_expected_shape():
    q, k_cache, v_cache, v_scale, seq_lens, _, _ = random_sequences(2, 4, 2, 8, [3, 2])
    with pytest.raises(ValueError, match=r"v_scale must be float32 \(2, 3, 2\), got .* \(2, 3\)$"):
        torch.ops.knlp.decode_attention(
            q, k_cache, v_cache, v_scale[..., 0], seq_lens, None, 3, 1.0
        )


@pytest.mark.parametrize("hip,vendor", [(None, "cuda"), ("6.2.41133", "rocm")])
def test_gpu_ops_load_the_library_of_torch_s_build(monkeypatch, hip, vendor):
    monkeypatch.setattr(torch.version, "hip", hip)
    assert ops._vendor() == vendor
