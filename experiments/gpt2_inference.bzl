"""The inference-speed measurement's settings per device: size, precision, contexts, batches.

Literals only (tools/bazel/bzl_data.py). One step per GPT-2 class
(experiments/experiments.bzl GPT2_CLASSES), measured by
experiments/inference_step.py: a prefill of random prompts, then greedy
decode through the class's own KV cache, each point timed beside the same
point of `base` in the same process. On a GPU profile GPT-2 124M in bf16 at
contexts 256 to 4,096 and batches 1 and 8; on the CPU the tiny trunk of
experiments/inference.py SIZES, at contexts small enough for the gate, whose
speeds show that every class generates, not what the papers claim.
"""

GPT2_INFERENCE = {
    "base": "GPT2",
    "cuda": {
        "size": "124m",
        "dtype": "bfloat16",
        "contexts": [256, 512, 1024, 2048, 4096],
        "batches": [1, 8],
        "decode_tokens": 32,
    },
    "cpu": {
        "size": "tiny",
        "dtype": "float32",
        "contexts": [256, 1024],
        "batches": [1, 8],
        "decode_tokens": 8,
    },
}
