"""FlashInfer with K in 16 bits and V in FP8: attention error against an FP32 reference.

The fork's point is that K and V may have different dtypes in decode and in
prefill. This program builds random Q, K, V, stores V in float8_e4m3fn with a
per-tensor scale, runs the fork's single-request decode and prefill kernels
with the FP16 K and the FP8 V, and compares the outputs with attention computed
in FP32 from the unquantized tensors (the gate, < 0.10) and from the
dequantized V (the kernel's own error, for diagnosis).
"""

import math
import sys

import torch

from tools.reproduce.measure import common

HEADS_Q, HEADS_KV, HEAD_DIM = 28, 4, 128  # Qwen2.5-7B's attention shape
FP8_MAX = 448.0  # float8_e4m3fn


def reference(q, k, v, causal):
    """Attention in FP32. q [Lq, Hq, D], k and v [Lk, Hkv, D], grouped heads."""
    group = q.shape[1] // k.shape[1]
    k = k.float().repeat_interleave(group, dim=1)
    v = v.float().repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q.float(), k) / math.sqrt(q.shape[-1])
    if causal:
        lq, lk = q.shape[0], k.shape[0]
        mask = torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril(lk - lq)
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    import flashinfer

    torch.manual_seed(args.seed)
    dev = "cuda"
    records = []
    for kv_len in (2048, 8192, 32768):
        k = torch.randn(kv_len, HEADS_KV, HEAD_DIM, dtype=torch.float16, device=dev)
        v = torch.randn(kv_len, HEADS_KV, HEAD_DIM, dtype=torch.float16, device=dev)
        v_scale = float(v.abs().max()) / FP8_MAX
        v8 = (v.float() / v_scale).to(torch.float8_e4m3fn)
        v_deq = v8.float() * v_scale

        q = torch.randn(HEADS_Q, HEAD_DIM, dtype=torch.float16, device=dev)
        out = flashinfer.single_decode_with_kv_cache(q, k, v8, v_scale=v_scale)
        ref = reference(q[None], k, v, causal=False)[0]
        kernel = reference(q[None], k, v_deq, causal=False)[0]
        records += [
            {
                "metric": "flashinfer_decode_rel_err",
                "value": common.rel_err(out, ref),
                "kv_len": kv_len,
            },
            {
                "metric": "flashinfer_decode_kernel_rel_err",
                "value": common.rel_err(out, kernel),
                "kv_len": kv_len,
            },
        ]

        qp = torch.randn(512, HEADS_Q, HEAD_DIM, dtype=torch.float16, device=dev)
        out = flashinfer.single_prefill_with_kv_cache(qp, k, v8, causal=True, v_scale=v_scale)
        ref = reference(qp, k, v, causal=True)
        kernel = reference(qp, k, v_deq, causal=True)
        records += [
            {
                "metric": "flashinfer_prefill_rel_err",
                "value": common.rel_err(out, ref),
                "kv_len": kv_len,
            },
            {
                "metric": "flashinfer_prefill_kernel_rel_err",
                "value": common.rel_err(out, kernel),
                "kv_len": kv_len,
            },
        ]
    # The gates read one value per metric: the worst over the lengths, recorded last.
    for name in ("flashinfer_decode_rel_err", "flashinfer_prefill_rel_err"):
        worst = max(r["value"] for r in records if r["metric"] == name)
        records.append({"metric": name, "value": worst, "over": "max kv_len"})
    common.write_records(args.out, records, args.cell)
    return 0


if __name__ == "__main__":
    sys.exit(main())
