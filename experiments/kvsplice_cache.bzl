"""The KV-cache measurement: which classes, at which dimensions and lengths.

Literals only (tools/bazel/bzl_data.py). One step per class, each measured by
experiments/kv_cache_step.py: it prefills the model through its KV cache in
chunks of the first token count and sums the bytes of the cache tensors after
each chunk, against the design's theory.
"""

KV_CACHE = {
    "classes": ["GPT2", "GPT2_MLA", "GPT2_MLA_KV", "GPT2_MLA_KV2"],
    "tokens": [256, 512, 1024],
    "preset": "124m",
    "dtype": "float32",
}
