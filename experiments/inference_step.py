"""An inference measurement: one GPT-2 class generating, timed beside GPT2 in the same process.

The "inference" kind of experiments/run_step.py (`measure`). The step's
declaration (gpt2_inference.bzl, for the profile's device) gives the size,
precision, contexts, batches and decode length; experiments/inference.py
builds the class and the base (GPT2) at that size and measures both point by
point, interleaved. The ratios are taken inside the run, so they compare two
models timed on one machine in one process, never a figure of this build
with a base taken from the cache of another. The run's values hold the
class's points (prefill ms, decode tokens/s, ms per token, cache bytes), the
base's points, and the ratios; its check:

  * cache vs theory: at every point, the bytes of the attention cache the
    prefill returned equal experiments/checks.py `kv_values_per_token_layer`
    x layers x element bytes x batch x context, exactly.
"""

from __future__ import annotations

import dataclasses

import torch

from experiments import inference
from experiments.checks import Check, kv_values_per_token_layer
from models.gpt2 import zoo

DTYPES = ("float32", "bfloat16", "float16")


def dtype_of(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype {name!r}: accepted: {', '.join(DTYPES)}")
    return getattr(torch, name)


def cache_check(name: str, cfg, points: list[dict], element_bytes: int) -> Check:
    """The attention cache of every point against the design's bytes per token."""
    per_token = kv_values_per_token_layer(name, cfg) * cfg.n_layer * element_bytes
    wrong = [
        f"context {p['context']}, batch {p['batch']}: {p['attention_cache_bytes']:,} B, "
        f"theory {per_token * p['batch'] * p['cache_tokens']:,} B"
        for p in points
        if p["attention_cache_bytes"] != per_token * p["batch"] * p["cache_tokens"]
    ]
    ok = f"{per_token:,} B per token and sequence at all {len(points)} points, as designed"
    return Check("cache vs theory", not wrong, f"{name}: " + ("; ".join(wrong) or ok))


def measure(spec, profile, device: str, data_root, log):
    """The "inference" kind: (values, checks) of one class generating beside the base."""
    d = spec.declaration
    name, base = d["class"], d["base"]
    dtype = dtype_of(d["dtype"])
    contexts, batches = tuple(d["contexts"]), tuple(d["batches"])
    points = inference.measure_classes(
        [name] if name == base else [name, base],
        size=d["size"],
        contexts=contexts,
        batches=batches,
        decode_tokens=d["decode_tokens"],
        device=device,
        dtype=dtype,
    )
    ratios = [r for r in inference.ratios(points, base) if r["class"] == name]
    own = [p for p in points if p["class"] == name]
    cfg = inference.class_config(zoo.get_class(name), d["size"], max(contexts) + d["decode_tokens"])
    top = max(ratios, key=lambda r: (r["context"], r["batch"]))
    log(
        f"{name} at context {top['context']}, batch {top['batch']}: x{top['speedup']:.2f} "
        f"{base}'s decode tokens/s, cache /{top['cache_reduction']:.2f}"
    )
    values = {
        "class": name,
        "base": base,
        "size": d["size"],
        "dtype": d["dtype"],
        "device": device,
        "params": own[0]["params"],
        "config": dataclasses.asdict(cfg),
        "points": own,
        "base_points": [p for p in points if p["class"] == base],
        "ratios": ratios,
    }
    element_bytes = torch.tensor([], dtype=dtype).element_size()
    return values, [cache_check(name, cfg, own, element_bytes).to_dict()]
