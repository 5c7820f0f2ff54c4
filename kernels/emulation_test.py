"""The GPU kernels' source, run on the CPU by //kernels:decode_emu, against the reference.

decode_attention.cu compiled with g++ against cpu_emulation.h runs every GPU
thread as a fiber, with real __syncthreads() and warp shuffles, so this
checks the kernels' indexing, split planning, reduce-scatter, softmax merge,
paged addressing and the writer's quantization without a GPU, with the same
gates as gpu_test.py: K bit-exact, V codes and scales equal, attention
relative error under 1e-2. Shapes are small because emulation is slow; they
cover every compiled group size (1..8) and both head dims, one split and the
fused merge of many, chunks of many tiles, paged caches whose pages cut
tiles, NaN propagation, the checks that refuse bad input before launch, the
launch counter and the library's own errors reaching the caller.
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
    # hq, hkv, d, lens, page_size, multiprocessors (the emulation reports 4
    # blocks per multiprocessor, so few of them means few splits)
    (2, 2, 64, [1, 70], None, 2),  # group 1, D 64, two splits
    (14, 2, 128, [600, 37], None, 2),  # group 7 (Qwen's), splits of many tiles
    (14, 2, 128, [300, 5, 129], 16, 8),  # paged, ragged, many splits
    (8, 4, 64, [130, 0], 8, 4),  # group 2, an empty sequence
    (16, 4, 128, [200], None, 1),  # group 4, one split: no merge
    (3, 1, 128, [1100], None, 1),  # group 3: one split of 1100 tokens (no chunk cap)
    (10, 2, 64, [333, 64], 5, 1),  # group 5, pages of 5 cut every tile
    (12, 2, 128, [257], 7, 16),  # group 6, pages of 7, the most splits
    (8, 1, 64, [513, 1], 24, 64),  # group 8, a split past a short sequence
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


def test_decode_is_deterministic(lib):
    # Fixed-order reductions and merge: the same bits every call.
    q, cache, seq_lens, table = filled(14, 2, 128, [300, 77], 16, seed=3)
    args = (q, *cache, seq_lens, table, 300, 0.1, 8, 0, 0)
    first, second = ops.decode_call(lib, *args), ops.decode_call(lib, *args)
    assert torch.equal(first.view(torch.int16), second.view(torch.int16))


@pytest.mark.parametrize("where", ["k", "v_code", "v_scale"])
def test_nan_in_k_or_v_propagates(lib, where):
    hq, hkv, d, lens = 8, 2, 64, [200, 150]
    q, cache, seq_lens, table = filled(hq, hkv, d, lens, None, seed=11)
    k_cache, v_cache, v_scale = cache
    if where == "k":
        k_cache[0, 123, 1, 5] = float("nan")  # every head of kv head 1 in sequence 0
    elif where == "v_code":
        v_cache.view(torch.uint8)[0, 123, 1, 5] = 0x7F  # dim 5 of kv head 1
    else:
        v_scale[0, 123, 1] = float("nan")  # every dim of kv head 1
    ref = reference.decode_attention(q, *cache, seq_lens, table, 0.125)
    out = ops.decode_call(lib, q, *cache, seq_lens, table, max(lens), 0.125, 2, 0, 0)
    assert ref.isnan().any(), "the reference must see the NaN"
    assert torch.equal(out.isnan(), ref.isnan()), (
        f"NaN positions differ: kernel {out.isnan().nonzero().tolist()[:8]}, "
        f"reference {ref.isnan().nonzero().tolist()[:8]}"
    )
    live = ~ref.isnan()
    rel = ((out[live].float() - ref[live].float()).norm() / ref[live].float().norm()).item()
    assert rel < 1e-2, f"relative error {rel:.3g} outside the NaN"


def _call(lib, q, cache, seq_lens, table, max_seq_len):
    return ops.decode_call(lib, q, *cache, seq_lens, table, max_seq_len, 0.1, 2, 0, 0)


def test_seq_lens_above_max_seq_len_are_refused_before_launch(lib):
    q, cache, seq_lens, table = filled(4, 2, 64, [40, 70], 16, seed=5)
    calls = ops.KERNEL_CALLS["knlp_decode_attention"]
    with pytest.raises(ValueError, match=r"seq_lens range 40\.\.70 is outside 0\.\.max_seq_len=64"):
        _call(lib, q, cache, seq_lens, table, 64)
    with pytest.raises(ValueError, match=r"seq_lens range -1\.\.40"):
        _call(lib, q, cache, torch.tensor([40, -1], dtype=torch.int32), table, 64)
    assert ops.KERNEL_CALLS["knlp_decode_attention"] == calls, "the kernel was launched"


def _misaligned(t):
    """A contiguous copy of t whose data pointer is 2 bytes past a 16-byte boundary."""
    nbytes = t.numel() * t.element_size()
    buf = bytearray(nbytes + 32)
    addr = torch.frombuffer(buf, dtype=torch.uint8).data_ptr()
    offset = (2 - addr) % 16
    view = torch.frombuffer(buf, dtype=t.dtype, count=t.numel(), offset=offset).view(t.shape)
    view.copy_(t)
    assert view.data_ptr() % 16 == 2
    return view


@pytest.mark.parametrize("name", ["q", "k_cache", "v_cache", "v_scale"])
def test_misaligned_pointers_are_refused(lib, name):
    q, cache, seq_lens, table = filled(4, 2, 64, [40, 70], None, seed=6)
    named = dict(zip(["k_cache", "v_cache", "v_scale"], cache, strict=True), q=q)
    named[name] = _misaligned(named[name])
    args = [named[n] for n in ("k_cache", "v_cache", "v_scale")]
    with pytest.raises(
        ValueError, match=rf"{name} data pointer 0x[0-9a-f]+ is not \d+-byte aligned"
    ):
        ops.decode_call(lib, named["q"], *args, seq_lens, table, 70, 0.1, 2, 0, 0)


def test_the_library_refuses_misaligned_pointers_too(lib):
    # The C ABI checks again, for callers that skip ops.py.
    q, (k, v, s), seq_lens, _ = filled(4, 2, 64, [40, 70], None, seed=6)
    out = torch.empty_like(q)
    status = lib.knlp_decode_attention(
        q.data_ptr(), k.data_ptr() + 2, v.data_ptr(), s.data_ptr(), seq_lens.data_ptr(), None,
        2, 4, 2, 64, 70, 0, 70, 1, 128, 0.1, None, None, None, out.data_ptr(), 0, None,
    )  # fmt: skip
    assert status != 0 and b"must be 16-byte aligned" in lib.knlp_last_error()


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda a: a.update(q=a["q"].half()), r"q must be bf16"),
        (lambda a: a.update(k_cache=a["k_cache"].half()), r"k_cache dtype torch.float16"),
        (lambda a: a.update(v_scale=a["v_scale"].double()), r"v_scale must be float32"),
        (lambda a: a.update(seq_lens=a["seq_lens"].long()), r"seq_lens must be int32"),
        (lambda a: a.update(table=a["table"].long()), r"block_table must be int32"),
    ],
)
def test_wrong_dtypes_are_refused(lib, change, message):
    q, (k, v, s), seq_lens, table = filled(4, 2, 64, [40, 70], 16, seed=7)
    a = dict(q=q, k_cache=k, v_cache=v, v_scale=s, seq_lens=seq_lens, table=table)
    change(a)
    with pytest.raises(ValueError, match=message):
        ops.decode_call(
            lib, a["q"], a["k_cache"], a["v_cache"], a["v_scale"], a["seq_lens"], a["table"],
            70, 0.1, 2, 0, 0,
        )  # fmt: skip


def test_each_call_counts_one_kernel_launch(lib):
    # KERNEL_CALLS is how GPU tests prove the kernel ran: exactly one per call.
    q, cache, seq_lens, table = filled(4, 2, 64, [40, 70], None, seed=8)
    before = ops.KERNEL_CALLS.copy()
    ops.decode_call(lib, q, *cache, seq_lens, table, 70, 0.1, 2, 0, 0)
    k = torch.zeros(2, 2, 64, dtype=torch.bfloat16)
    ops.kv_write_call(lib, k, k, torch.tensor([0, 1]), *cache, 0, 0)
    ops.kv_write_call(lib, k, k, torch.tensor([2, 3]), *cache, 0, 0)
    assert ops.KERNEL_CALLS["knlp_decode_attention"] - before["knlp_decode_attention"] == 1
    assert ops.KERNEL_CALLS["knlp_kv_write"] - before["knlp_kv_write"] == 2


def test_library_errors_name_the_op(lib, monkeypatch):
    # What the library refuses past ops.py's checks comes back as RuntimeError
    # naming the op and carrying the library's message.
    k = torch.zeros(1, 1, 2000, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match=r"^knlp::kv_write: kv write: head_dim=2000 must be"):
        ops.kv_write_call(lib, k, k, torch.tensor([0]), *make_cache(1, 1, 1, 2000), 0, 0)
    q, cache, seq_lens, table = filled(4, 2, 64, [40, 70], None, seed=9)
    monkeypatch.setattr(library, "decode_plan", lambda *args: (1, 1))  # a chunk not aligned
    with pytest.raises(
        RuntimeError, match=r"^knlp::decode_attention: decode: num_splits=1 chunk=1 do not cover"
    ):
        ops.decode_call(lib, q, *cache, seq_lens, table, 70, 0.1, 2, 0, 0)
