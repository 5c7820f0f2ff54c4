"""vLLM's KV-cache writer with K16/V8: K must be stored bit-exact, V within 7.5%.

The fork writes the cache split (K as 16-bit, V as FP8 with a per-layer
scale) through vLLM's `reshape_and_cache_flash` kernel, one cache at a time.
This program drives that kernel the same way on random K and V and a random
slot mapping, reads the caches back at those slots, and reports the number of
K elements that differ from the input bit for bit and the relative error of
the dequantized V.
"""

import sys

import torch

from tools.reproduce.measure import common

HEADS_KV, HEAD_DIM, BLOCK = 4, 128, 16
FP8_MAX = 448.0


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    from vllm import _custom_ops as ops

    torch.manual_seed(args.seed)
    dev = "cuda"
    tokens, blocks = 4096, 1024
    key = torch.randn(tokens, HEADS_KV, HEAD_DIM, dtype=torch.bfloat16, device=dev)
    value = torch.randn(tokens, HEADS_KV, HEAD_DIM, dtype=torch.bfloat16, device=dev)
    slots = torch.randperm(blocks * BLOCK, device=dev)[:tokens].to(torch.int64)
    shape = (blocks, BLOCK, HEADS_KV, HEAD_DIM)
    k_cache = torch.zeros(shape, dtype=torch.bfloat16, device=dev)
    v_cache = torch.zeros(shape, dtype=torch.uint8, device=dev)
    unused_k = torch.zeros(shape, dtype=torch.uint8, device=dev)
    unused_v = torch.zeros(shape, dtype=torch.bfloat16, device=dev)
    one = torch.ones(1, dtype=torch.float32, device=dev)
    v_scale = torch.tensor([float(value.abs().max()) / FP8_MAX], dtype=torch.float32, device=dev)

    ops.reshape_and_cache_flash(key, value, k_cache, unused_v, slots, "auto", one, one)
    ops.reshape_and_cache_flash(key, value, unused_k, v_cache, slots, "fp8", one, v_scale)

    k_back = k_cache.view(-1, HEADS_KV, HEAD_DIM)[slots]
    mismatched = int((k_back.view(torch.int16) != key.view(torch.int16)).sum())
    v_back = v_cache.view(-1, HEADS_KV, HEAD_DIM)[slots].view(torch.float8_e4m3fn).float()
    v_rel = common.rel_err(v_back * v_scale, value)
    common.write_records(
        args.out,
        [
            {
                "metric": "vllm_writer_k_mismatched_bits",
                "value": mismatched,
                "elements": key.numel(),
            },
            {"metric": "vllm_writer_v_rel_err", "value": v_rel},
        ],
        args.cell,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
