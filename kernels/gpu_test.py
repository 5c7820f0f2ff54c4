"""The GPU kernels against the PyTorch reference (tagged "gpu" in Bazel).

Run with `bazel test //kernels:gpu_test --config=cuda --config=gpu` (or
--config=rocm) on a machine with a GPU; without one every test is skipped.
Gates: the KV writer's K path is bit-exact (V codes and scales too), and the
attention output's relative error against the reference is under 1e-2.
"""

import pytest
import torch

from kernels import ops, reference

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA or ROCm GPU (torch.cuda.is_available() is False)",
)

SHAPES = {"qwen2.5-7b": (28, 4, 128), "gpt2": (12, 12, 64)}


def make_cache(slabs, rows, hkv, d, device):
    return (
        torch.zeros(slabs, rows, hkv, d, dtype=torch.bfloat16, device=device),
        torch.zeros(slabs, rows, hkv, d, dtype=reference.FP8, device=device),
        torch.zeros(slabs, rows, hkv, dtype=torch.float32, device=device),
    )


@pytest.mark.parametrize("model", sorted(SHAPES))
def test_kv_write_bit_exact(model):
    _, hkv, d = SHAPES[model]
    gen = torch.Generator().manual_seed(0)
    n = 300
    k = torch.randn(n, hkv, d, generator=gen).to(torch.bfloat16)
    v = (torch.randn(n, hkv, d, generator=gen) * torch.rand(n, hkv, 1, generator=gen) * 10).to(
        torch.bfloat16
    )
    v[7] = 0
    slots = torch.randperm(512, generator=gen)[:n]
    slots[::17] = -1
    cpu = make_cache(2, 256, hkv, d, "cpu")
    gpu = make_cache(2, 256, hkv, d, "cuda")
    torch.ops.knlp.kv_write(k, v, slots, *cpu)
    calls = ops.KERNEL_CALLS["knlp_kv_write"]
    torch.ops.knlp.kv_write(k.cuda(), v.cuda(), slots.cuda(), *gpu)
    assert ops.KERNEL_CALLS["knlp_kv_write"] == calls + 1, "the GPU op did not call the kernel"
    torch.cuda.synchronize()
    assert torch.equal(gpu[0].cpu().view(torch.int16), cpu[0].view(torch.int16)), "K not bit-exact"
    assert torch.equal(gpu[1].cpu().view(torch.uint8), cpu[1].view(torch.uint8)), "V codes differ"
    assert torch.equal(gpu[2].cpu(), cpu[2]), "V scales differ"


def filled_cache(model, lens, page_size, seed):
    hq, hkv, d = SHAPES[model]
    gen = torch.Generator().manual_seed(seed)
    bsz, t_max = len(lens), max(lens)
    q = torch.randn(bsz, hq, d, generator=gen).to(torch.bfloat16)
    if page_size is None:
        cache = make_cache(bsz, t_max, hkv, d, "cuda")
        slots = torch.cat([b * t_max + torch.arange(n) for b, n in enumerate(lens)])
        table = None
    else:
        per_seq = -(-t_max // page_size)
        table = torch.randperm(bsz * per_seq, generator=gen).view(bsz, per_seq).to(torch.int32)
        cache = make_cache(bsz * per_seq, page_size, hkv, d, "cuda")
        slots = torch.cat(
            [
                table[b, torch.arange(n) // page_size].long() * page_size
                + torch.arange(n) % page_size
                for b, n in enumerate(lens)
            ]
        )
        table = table.cuda()
    k = torch.randn(len(slots), hkv, d, generator=gen).to(torch.bfloat16)
    v = torch.randn(len(slots), hkv, d, generator=gen).to(torch.bfloat16)
    torch.ops.knlp.kv_write(k.cuda(), v.cuda(), slots.cuda(), *cache)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device="cuda")
    return q.cuda(), cache, seq_lens, table


CASES = [
    ([1], None),
    ([37, 512, 513, 3000], None),
    ([4096, 1, 700], None),
    ([37, 512, 513, 3000], 16),
    ([5000, 64], 128),
]


@pytest.mark.parametrize("model", sorted(SHAPES))
@pytest.mark.parametrize("lens,page_size", CASES)
def test_decode_matches_reference(model, lens, page_size):
    q, cache, seq_lens, table = filled_cache(model, lens, page_size, seed=len(lens))
    scale = ops.default_scale(q.shape[-1])
    calls = ops.KERNEL_CALLS["knlp_decode_attention"]
    out = torch.ops.knlp.decode_attention(q, *cache, seq_lens, table, max(lens), scale)
    assert ops.KERNEL_CALLS["knlp_decode_attention"] == calls + 1, "the GPU op ran no kernel"
    ref = reference.decode_attention(q, *cache, seq_lens, table, scale)
    rel = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    assert rel < 1e-2, f"relative error {rel:.3g}"
    # Per sequence and head too, so one bad head cannot hide in the norm.
    per_row = (out.float() - ref.float()).norm(dim=-1) / ref.float().norm(dim=-1)
    assert per_row.max().item() < 2e-2, per_row.max().item()


def test_decode_is_deterministic():
    q, cache, seq_lens, table = filled_cache("qwen2.5-7b", [8192, 3000], None, seed=9)
    runs = [
        torch.ops.knlp.decode_attention(q, *cache, seq_lens, table, 8192, 0.088) for _ in range(3)
    ]
    assert all(torch.equal(runs[0], r) for r in runs[1:])


def test_gpu_rejects_unsupported_head_dim():
    q, cache, seq_lens, table = filled_cache("gpt2", [10], None, seed=1)
    bad = [t[..., :32].contiguous() if t.dim() == 4 else t for t in cache]
    with pytest.raises(ValueError, match="head_dim 32 is not compiled"):
        torch.ops.knlp.decode_attention(q[..., :32].contiguous(), *bad, seq_lens, table, 10, 0.1)


def test_gpu_refuses_seq_lens_above_max_seq_len():
    q, cache, seq_lens, table = filled_cache("gpt2", [100, 40], 16, seed=2)
    with pytest.raises(
        ValueError, match=r"seq_lens range 40\.\.100 is outside 0\.\.max_seq_len=64"
    ):
        torch.ops.knlp.decode_attention(q, *cache, seq_lens, table, 64, 0.1)


@pytest.mark.parametrize("where", ["k", "v_code"])
def test_gpu_nan_in_k_or_v_propagates(where):
    # Long enough for many splits: the NaN passes the cp.async pipeline and the merge.
    q, cache, seq_lens, table = filled_cache("qwen2.5-7b", [6000, 300], None, seed=4)
    if where == "k":
        cache[0][0, 4321, 2, 7] = float("nan")
    else:
        cache[1].view(torch.uint8)[0, 4321, 2, 7] = 0x7F
    out = torch.ops.knlp.decode_attention(q, *cache, seq_lens, table, 6000, 0.088)
    ref = reference.decode_attention(
        q.cpu(), *(t.cpu() for t in cache), seq_lens.cpu(), table, 0.088
    )
    assert ref.isnan().any()
    assert torch.equal(out.cpu().isnan(), ref.isnan())
