"""The GPU kernels' source, run on the CPU by //kernels:decode_emu, against the reference.

decode_attention.cu compiled with g++ against cpu_emulation.h runs every GPU
thread as a fiber, with real __syncthreads() and warp shuffles, so this
checks the kernels' indexing, split planning, reduce-scatter, softmax merge,
paged addressing and the writer's quantization without a GPU, with the same
gates as gpu_test.py: K bit-exact, V codes and scales equal, attention
relative error under 1e-2. Shapes are small because emulation is slow; the
group sizes cover every compiled GMAX (1, 2, 4, 8) and both head dims.
"""

import pytest
import torch

from kernels import library, ops, reference


@pytest.fixture(scope="module")
def lib():
    lib = library.load(library.EMULATION)
    assert lib.knlp_kernels_vendor() == b"cpu-emulation"
    return lib


def make_cache(slabs, rows, hkv, d):
    return (
        torch.zeros(slabs, rows, hkv, d, dtype=torch.bfloat16),
        torch.zeros(slabs, rows, hkv, d, dtype=reference.FP8),
        torch.zeros(slabs, rows, hkv, dtype=torch.float32),
    )


@pytest.mark.parametrize("hkv,d", [(2, 128), (3, 64), (1, 200)])
def test_kv_write_bit_exact(lib, hkv, d):
    gen = torch.Generator().manual_seed(d)
    n = 24
    k = torch.randn(n, hkv, d, generator=gen).to(torch.bfloat16)
    scale = torch.exp2(torch.randint(-12, 12, (n, hkv, 1), generator=gen).float())
    v = (torch.randn(n, hkv, d, generator=gen) * scale).to(torch.bfloat16)
    v[3] = 0
    v[5, 0, :4] = 1e-30  # tiny values: subnormal codes
    slots = torch.randperm(2 * 16, generator=gen)[:n]
    slots[::5] = -1
    want, got = make_cache(2, 16, hkv, d), make_cache(2, 16, hkv, d)
    reference.kv_write(k, v, slots, *want)
    ops.kv_write_call(lib, k, v, slots, *got, 0, 0)
    assert torch.equal(got[0].view(torch.int16), want[0].view(torch.int16)), "K not bit-exact"
    assert torch.equal(got[1].view(torch.uint8), want[1].view(torch.uint8)), "V codes differ"
    assert torch.equal(got[2], want[2]), "V scales differ"


def filled(hq, hkv, d, lens, page_size, seed):
    gen = torch.Generator().manual_seed(seed)
    bsz, t_max = len(lens), max(lens)
    q = torch.randn(bsz, hq, d, generator=gen).to(torch.bfloat16)
    if page_size is None:
        cache = make_cache(bsz, t_max, hkv, d)
        slots = torch.cat([b * t_max + torch.arange(n) for b, n in enumerate(lens)])
        table = None
    else:
        per_seq = -(-t_max // page_size)
        table = torch.randperm(bsz * per_seq, generator=gen).view(bsz, per_seq).to(torch.int32)
        cache = make_cache(bsz * per_seq, page_size, hkv, d)
        pos = [torch.arange(n) for n in lens]
        slots = torch.cat(
            [table[b, p // page_size].long() * page_size + p % page_size for b, p in enumerate(pos)]
        )
    k = torch.randn(len(slots), hkv, d, generator=gen).to(torch.bfloat16)
    v = (torch.randn(len(slots), hkv, d, generator=gen) * 3).to(torch.bfloat16)
    reference.kv_write(k, v, slots, *cache)
    return q, cache, torch.tensor(lens, dtype=torch.int32), table


CASES = [
    # hq, hkv, d, lens, page_size, multiprocessors (small: forces several splits)
    (2, 2, 64, [1, 70], None, 2),  # group 1, D 64
    (14, 2, 128, [600, 37], None, 2),  # group 7 (Qwen's), GMAX 8, chunk 512 + tail
    (14, 2, 128, [300, 5, 129], 16, 8),  # paged, ragged
    (8, 4, 64, [130, 0], 8, 4),  # group 2, an empty sequence
    (16, 4, 128, [200], None, 1),  # group 4
]


@pytest.mark.parametrize("hq,hkv,d,lens,page_size,sms", CASES)
def test_decode_matches_reference(lib, hq, hkv, d, lens, page_size, sms):
    q, cache, seq_lens, table = filled(hq, hkv, d, lens, page_size, seed=sum(lens))
    scale = ops.default_scale(d)
    out = ops.decode_call(lib, q, *cache, seq_lens, table, max(lens), scale, sms, 0, 0)
    ref = reference.decode_attention(q, *cache, seq_lens, table, scale)
    live = seq_lens > 0
    assert not out[~live].float().any(), "an empty sequence must give zeros"
    o, r = out[live].float(), ref[live].float()
    rel = ((o - r).norm() / r.norm()).item()
    assert rel < 1e-2, f"relative error {rel:.3g}"
    per_row = ((o - r).norm(dim=-1) / r.norm(dim=-1)).max().item()
    assert per_row < 2e-2, per_row
