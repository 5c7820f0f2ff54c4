"""The K16/V8 cache operations as torch custom ops (torch.library).

    torch.ops.knlp.kv_write(k, v, slot_mapping, k_cache, v_cache, v_scale)
    out = torch.ops.knlp.decode_attention(q, k_cache, v_cache, v_scale, seq_lens,
                                          block_table, max_seq_len, softmax_scale)

On CPU tensors they run the PyTorch reference (kernels/reference.py); on GPU
tensors ("cuda" in torch, which includes ROCm builds) they call the compiled
kernels through the C ABI in kernels/library.py, on torch's current stream.
Shapes, dtypes and layouts are described in reference.py. Every input is
validated first; a bad one raises ValueError naming the value and what is
accepted.
"""

import math
from collections import Counter

import torch

from kernels import library, reference

HEAD_DIMS = (64, 128)  # what the GPU kernel is compiled for
MAX_GROUP = 8  # q heads per kv head the GPU kernel supports

# Calls that reached the compiled library, by C function: lets tests prove a
# GPU op ran the kernel and not the reference.
KERNEL_CALLS = Counter()


def _require(cond, msg):
    if not cond:
        raise ValueError(msg)


def _check_cache(k_cache, v_cache, v_scale):
    _require(k_cache.dim() == 4, f"k_cache must be 4-d [slabs, rows, H_kv, D], got {k_cache.shape}")
    _require(k_cache.dtype == torch.bfloat16, f"k_cache dtype {k_cache.dtype}; accepted: bfloat16")
    _require(
        v_cache.dtype == reference.FP8,
        f"v_cache dtype {v_cache.dtype}; accepted: {reference.FP8}",
    )
    _require(
        v_cache.shape == k_cache.shape,
        f"v_cache shape {tuple(v_cache.shape)} != k_cache {tuple(k_cache.shape)}",
    )
    _require(
        v_scale.dtype == torch.float32 and tuple(v_scale.shape) == tuple(k_cache.shape[:3]),
        f"v_scale must be float32 {tuple(k_cache.shape[:3])}, got {v_scale.dtype} "
        f"{tuple(v_scale.shape)}",
    )
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache), ("v_scale", v_scale)):
        _require(t.is_contiguous(), f"{name} must be contiguous")


def _vendor():
    return "rocm" if torch.version.hip else "cuda"


def _stream(t):
    return torch.cuda.current_stream(t.device).cuda_stream


@torch.library.custom_op("knlp::kv_write", mutates_args=("k_cache", "v_cache", "v_scale"))
def kv_write(
    k: torch.Tensor,
    v: torch.Tensor,
    slot_mapping: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    v_scale: torch.Tensor,
) -> None:
    """Stores new tokens: K unchanged, V as fp8 codes plus per-(token, head) scales."""
    _check_kv_write(k, v, slot_mapping, k_cache, v_cache, v_scale)
    reference.kv_write(k, v, slot_mapping, k_cache, v_cache, v_scale)


def _check_kv_write(k, v, slot_mapping, k_cache, v_cache, v_scale):
    _check_cache(k_cache, v_cache, v_scale)
    hkv, d = k_cache.shape[2], k_cache.shape[3]
    _require(
        k.dtype == torch.bfloat16 and v.dtype == torch.bfloat16,
        f"k, v dtypes {k.dtype}, {v.dtype}; accepted: bfloat16",
    )
    _require(
        k.dim() == 3 and k.shape == v.shape and tuple(k.shape[1:]) == (hkv, d),
        f"k, v must be [N, {hkv}, {d}], got {tuple(k.shape)}, {tuple(v.shape)}",
    )
    _require(
        slot_mapping.dtype == torch.int64 and tuple(slot_mapping.shape) == (k.shape[0],),
        f"slot_mapping must be int64 [{k.shape[0]}], got {slot_mapping.dtype} "
        f"{tuple(slot_mapping.shape)}",
    )


@kv_write.register_kernel("cuda")
def _kv_write_gpu(k, v, slot_mapping, k_cache, v_cache, v_scale):
    _check_kv_write(k, v, slot_mapping, k_cache, v_cache, v_scale)
    lib = library.load(_vendor())
    kv_write_call(
        lib, k, v, slot_mapping, k_cache, v_cache, v_scale, k.device.index or 0, _stream(k)
    )


def kv_write_call(lib, k, v, slot_mapping, k_cache, v_cache, v_scale, device, stream):
    """Calls the library's knlp_kv_write on validated tensors (device memory, or host
    memory for the CPU emulation library)."""
    k, v, slot_mapping = k.contiguous(), v.contiguous(), slot_mapping.contiguous()
    KERNEL_CALLS["knlp_kv_write"] += 1
    status = lib.knlp_kv_write(
        k.data_ptr(),
        v.data_ptr(),
        slot_mapping.data_ptr(),
        k.shape[0],
        k.shape[1],
        k.shape[2],
        k_cache.data_ptr(),
        v_cache.data_ptr(),
        v_scale.data_ptr(),
        device,
        stream,
    )
    library.check(lib, status, "knlp::kv_write")


def _check_decode(q, k_cache, v_cache, v_scale, seq_lens, block_table, max_seq_len):
    _check_cache(k_cache, v_cache, v_scale)
    _require(
        q.dtype == torch.bfloat16 and q.dim() == 3,
        f"q must be bf16 [B, H_q, D], got {q.dtype} {tuple(q.shape)}",
    )
    bsz, hq, d = q.shape
    hkv = k_cache.shape[2]
    _require(d == k_cache.shape[3], f"q head_dim {d} != cache head_dim {k_cache.shape[3]}")
    _require(hq % hkv == 0, f"q heads {hq} must be a multiple of kv heads {hkv}")
    _require(
        seq_lens.dtype == torch.int32 and tuple(seq_lens.shape) == (bsz,),
        f"seq_lens must be int32 [{bsz}], got {seq_lens.dtype} {tuple(seq_lens.shape)}",
    )
    if block_table is None:
        _require(
            k_cache.shape[0] == bsz,
            f"contiguous cache has {k_cache.shape[0]} slabs for batch {bsz}",
        )
        capacity = k_cache.shape[1]
    else:
        _require(
            block_table.dtype == torch.int32
            and block_table.dim() == 2
            and block_table.shape[0] == bsz,
            f"block_table must be int32 [{bsz}, max_pages], got {block_table.dtype} "
            f"{tuple(block_table.shape)}",
        )
        capacity = block_table.shape[1] * k_cache.shape[1]
    _require(
        1 <= max_seq_len <= capacity,
        f"max_seq_len {max_seq_len} must be in 1..{capacity} (the cache's capacity)",
    )


@torch.library.custom_op("knlp::decode_attention", mutates_args=())
def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    v_scale: torch.Tensor,
    seq_lens: torch.Tensor,
    block_table: torch.Tensor | None,
    max_seq_len: int,
    softmax_scale: float,
) -> torch.Tensor:
    """softmax(q k^T * softmax_scale) v for one query token per sequence; [B, H_q, D] bf16.

    max_seq_len bounds seq_lens (the GPU kernel sizes its split from it
    without reading the lengths back).
    """
    _check_decode(q, k_cache, v_cache, v_scale, seq_lens, block_table, max_seq_len)
    _require(
        int(seq_lens.max()) <= max_seq_len and int(seq_lens.min()) >= 0,
        f"seq_lens must be in 0..max_seq_len={max_seq_len}, got {seq_lens.tolist()}",
    )
    return reference.decode_attention(
        q, k_cache, v_cache, v_scale, seq_lens, block_table, softmax_scale
    )


@decode_attention.register_fake
def _decode_attention_fake(
    q, k_cache, v_cache, v_scale, seq_lens, block_table, max_seq_len, softmax_scale
):
    return torch.empty_like(q)


@decode_attention.register_kernel("cuda")
def _decode_attention_gpu(
    q, k_cache, v_cache, v_scale, seq_lens, block_table, max_seq_len, softmax_scale
):
    tensors = [q, k_cache, v_cache, v_scale, seq_lens] + (
        [] if block_table is None else [block_table]
    )
    _require(
        all(t.device == q.device for t in tensors),
        f"every tensor must be on {q.device}, got {[str(t.device) for t in tensors]}",
    )
    lib = library.load(_vendor())
    sms = torch.cuda.get_device_properties(q.device).multi_processor_count
    return decode_call(
        lib,
        q,
        k_cache,
        v_cache,
        v_scale,
        seq_lens,
        block_table,
        max_seq_len,
        softmax_scale,
        sms,
        q.device.index or 0,
        _stream(q),
    )


# Bytes each pointer the kernel reads must be aligned to (16-byte copies of q, K, V).
ALIGNMENT = {"q": 16, "k_cache": 16, "v_cache": 16, "v_scale": 4}


def _check_kernel_inputs(q, k_cache, v_cache, v_scale, seq_lens, max_seq_len):
    """What the compiled kernel needs beyond _check_decode: its shapes, aligned
    pointers, and seq_lens within 0..max_seq_len (read back: one device sync)."""
    bsz, hq, d = q.shape
    hkv = k_cache.shape[2]
    _require(d in HEAD_DIMS, f"head_dim {d} is not compiled; accepted: {HEAD_DIMS}")
    _require(hq // hkv <= MAX_GROUP, f"{hq // hkv} q heads per kv head; accepted: 1..{MAX_GROUP}")
    named = {"q": q, "k_cache": k_cache, "v_cache": v_cache, "v_scale": v_scale}
    for name, t in named.items():
        _require(
            t.data_ptr() % ALIGNMENT[name] == 0,
            f"{name} data pointer {t.data_ptr():#x} is not {ALIGNMENT[name]}-byte aligned; "
            f"accepted: a tensor whose storage offset keeps that alignment",
        )
    lo, hi = int(seq_lens.min()), int(seq_lens.max())
    _require(
        0 <= lo and hi <= max_seq_len,
        f"seq_lens range {lo}..{hi} is outside 0..max_seq_len={max_seq_len}; "
        f"accepted: every length in 0..max_seq_len",
    )


def decode_call(
    lib,
    q,
    k_cache,
    v_cache,
    v_scale,
    seq_lens,
    block_table,
    max_seq_len,
    softmax_scale,
    multiprocessors,
    device,
    stream,
):
    """Validates the inputs, plans the split from the kernel's occupancy and calls
    knlp_decode_attention (device memory, or host memory for the CPU emulation
    library). Bad inputs raise ValueError before anything is launched."""
    _check_decode(q, k_cache, v_cache, v_scale, seq_lens, block_table, max_seq_len)
    bsz, hq, d = q.shape
    if bsz == 0:
        return torch.empty_like(q)
    q = q.contiguous()
    _check_kernel_inputs(q, k_cache, v_cache, v_scale, seq_lens, max_seq_len)
    hkv = k_cache.shape[2]
    per_sm = library.decode_occupancy(lib, d, hq // hkv, device)
    splits, chunk = library.decode_plan(lib, bsz, hkv, max_seq_len, multiprocessors, per_sm)
    table = None if block_table is None else block_table.contiguous()
    out = torch.empty_like(q)
    # The split path's partials and per-(sequence, kv head) arrival counters.
    part_o = part_ml = counters = None
    if splits > 1:
        part_o = torch.empty(bsz * hq * splits * d, dtype=torch.float32, device=q.device)
        part_ml = torch.empty(bsz * hq * splits * 2, dtype=torch.float32, device=q.device)
        counters = torch.zeros(bsz * hkv, dtype=torch.int32, device=q.device)
    KERNEL_CALLS["knlp_decode_attention"] += 1
    status = lib.knlp_decode_attention(
        q.data_ptr(),
        k_cache.data_ptr(),
        v_cache.data_ptr(),
        v_scale.data_ptr(),
        seq_lens.data_ptr(),
        None if table is None else table.data_ptr(),
        bsz,
        hq,
        hkv,
        d,
        k_cache.shape[1],
        0 if table is None else table.shape[1],
        max_seq_len,
        splits,
        chunk,
        softmax_scale,
        None if part_o is None else part_o.data_ptr(),
        None if part_ml is None else part_ml.data_ptr(),
        None if counters is None else counters.data_ptr(),
        out.data_ptr(),
        device,
        stream,
    )
    library.check(lib, status, "knlp::decode_attention")
    return out


def default_scale(head_dim):
    """The usual softmax scale 1/sqrt(head_dim)."""
    return 1.0 / math.sqrt(head_dim)
