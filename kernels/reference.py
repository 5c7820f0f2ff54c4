"""PyTorch reference for the K16/V8 KV cache: the writer and decode attention.

This is the semantics the GPU kernels (decode_attention.cu) implement and the
CPU implementation of the torch custom ops in kernels/ops.py.

Terms. The KV cache stores, per token and kv head, K as bf16 (unchanged) and V
as fp8 e4m3 ("e4m3fn": largest finite value 448, no infinities) with one
float32 scale: scale = max|v| / 448 (1 when v is all zero), codes =
e4m3(v / scale) rounded to nearest even, and v is read back as codes * scale.
GQA: q head h reads kv head h // (q_heads / kv_heads).

Layouts (both token-major, "NHD"):
  contiguous: k_cache, v_cache [B, T_max, H_kv, D]; v_scale [B, T_max, H_kv];
              sequence b owns slab b; block_table is None.
  paged:      k_cache, v_cache [pages, page_size, H_kv, D]; v_scale
              [pages, page_size, H_kv]; block_table [B, max_pages] (int32)
              lists each sequence's pages in order.
A slot is a flat row index into the cache viewed as [-1, H_kv, D]:
page * page_size + position (contiguous: b * T_max + position).
"""

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0


def quantize_v(v):
    """bf16 V [..., D] -> (fp8 codes [..., D], float32 scales [...])."""
    vf = v.float()
    amax = vf.abs().amax(dim=-1)
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    return (vf / scale.unsqueeze(-1)).to(FP8), scale


def dequantize_v(codes, scale):
    """fp8 codes [..., D] and scales [...] -> float32 V."""
    return codes.float() * scale.unsqueeze(-1)


def kv_write(k, v, slot_mapping, k_cache, v_cache, v_scale):
    """Writes new tokens into the cache in place.

    k, v: [N, H_kv, D] bf16; slot_mapping: [N] int64 slots, negative = skip
    (padding). k is stored unchanged, v as fp8 codes with per-(token, head)
    scales.
    """
    hkv, d = k.shape[1], k.shape[2]
    keep = slot_mapping >= 0
    slots = slot_mapping[keep].long()
    codes, scale = quantize_v(v[keep])
    k_cache.view(-1, hkv, d)[slots] = k[keep]
    v_cache.view(-1, hkv, d)[slots] = codes
    v_scale.view(-1, hkv)[slots] = scale


def sequence_slots(b, seq_len, block_table, page_size):
    """The slots holding tokens 0..seq_len-1 of sequence b."""
    pos = torch.arange(seq_len)
    if block_table is None:
        return b * page_size + pos
    pages = block_table[b].long()[pos // page_size]
    return pages * page_size + pos % page_size


def decode_attention(q, k_cache, v_cache, v_scale, seq_lens, block_table, softmax_scale):
    """One query token per sequence over its cached K and V, in float32.

    q: [B, H_q, D] bf16; seq_lens: [B] int32. Returns [B, H_q, D] bf16. A
    sequence of length 0 gives zeros.
    """
    device = q.device
    q, k_cache, v_cache, v_scale, seq_lens = (
        t.cpu() for t in (q, k_cache, v_cache, v_scale, seq_lens)
    )
    block_table = None if block_table is None else block_table.cpu()
    bsz, hq, d = q.shape
    hkv = k_cache.shape[-2]
    page_size = k_cache.shape[1]
    group = hq // hkv
    k_rows = k_cache.reshape(-1, hkv, d)
    v_rows = v_cache.reshape(-1, hkv, d)
    s_rows = v_scale.reshape(-1, hkv)
    out = torch.zeros(bsz, hq, d, dtype=torch.float32)
    for b in range(bsz):
        n = int(seq_lens[b])
        if n == 0:
            continue
        slots = sequence_slots(b, n, block_table, page_size)
        k = k_rows[slots].float().repeat_interleave(group, dim=1)  # [n, H_q, D]
        v = dequantize_v(v_rows[slots], s_rows[slots]).repeat_interleave(group, dim=1)
        scores = torch.einsum("hd,nhd->hn", q[b].float(), k) * softmax_scale
        p = torch.softmax(scores, dim=-1)
        out[b] = torch.einsum("hn,nhd->hd", p, v)
    return out.to(torch.bfloat16).to(device)
