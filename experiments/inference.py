"""Inference speed per GPT-2 class: prefill, then decode through the class's own KV cache.

The README's inference claims (RA faster, RA+MLA+KVSplice faster, a 12x
smaller cache) need a model generating, not a kernel: for each class of
models/gpt2 (found by zoo.py) this builds the class at a size (`SIZES`),
prefills a batch of random prompts of each context length, then decodes
greedily one token at a time through the cache the prefill returned. Each
point records prefill time, decode tokens/s and per-token latency, and the
bytes of the cache read off its tensors after the prefill (all of it, and the
attention part the research checks predict: experiments/checks.py
`kv_values_per_token_layer`). `measure_classes` measures several classes
point by point, interleaved, so each point of one class is timed beside the
same point of the others; `ratios()` compares every class with GPT2 at the
same context and batch.

The `gpt2_inference` experiment runs it per class (experiments/inference_step.py),
tools/gpu_acceptance.py runs every class at 124M on a GPU host, its test
every class at tiny size on the CPU.
"""

from __future__ import annotations

import time

import torch

from models.gpt2 import zoo
from models.gpt2.config import FEATURE_FIELDS, PRESETS, GPT2Config
from models.gpt2.layers import cache_bytes

CONTEXTS = (256, 512, 1024, 2048, 4096)
BATCHES = (1, 8)
DECODE_TOKENS = 32
BASE = "GPT2"

# A size: the trunk every class shares, and mechanism sizes for the classes that
# have the mechanism (a class gets only the fields of its FEATURES).
SIZES = {
    "124m": {"trunk": dict(PRESETS["124m"]), "mechanisms": {}},
    "tiny": {
        "trunk": {"n_layer": 2, "n_head": 2, "n_embd": 64, "vocab_size": 128},
        "mechanisms": {"d_latent": 32, "ra_band": 8},
    },
}


def class_config(cls, size: str, block_size: int) -> GPT2Config:
    """The config `cls` is measured at: the size's trunk, its mechanisms the class has."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; accepted: {', '.join(SIZES)}")
    allowed = {name for feature in cls.FEATURES for name in FEATURE_FIELDS[feature]}
    mechanisms = {k: v for k, v in SIZES[size]["mechanisms"].items() if k in allowed}
    return GPT2Config(**SIZES[size]["trunk"], **mechanisms, block_size=block_size, dropout=0.0)


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def measure_point(model, context: int, batch: int, decode_tokens: int, device) -> dict:
    """Prefill `batch` random prompts of `context` tokens, then decode `decode_tokens` greedily."""
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(1000 * context + batch)
    idx = torch.randint(0, vocab, (batch, context), generator=gen).to(device)
    _sync(device)
    t0 = time.perf_counter()
    logits, _, cache = model(idx, use_cache=True)
    _sync(device)
    t1 = time.perf_counter()
    total, attention = cache_bytes(cache), cache_bytes(cache, parts=("attn",))
    nxt = logits[:, -1].argmax(-1, keepdim=True)
    t2 = time.perf_counter()
    for _ in range(decode_tokens):
        logits, _, cache = model(nxt, cache=cache, use_cache=True)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
    _sync(device)
    decode_s = time.perf_counter() - t2
    return {
        "context": context,
        "batch": batch,
        "prefill_ms": 1000 * (t1 - t0),
        "prefill_tokens_per_s": batch * context / (t1 - t0),
        "decode_tokens": decode_tokens,
        "decode_tokens_per_s": batch * decode_tokens / decode_s,
        "ms_per_token": 1000 * decode_s / decode_tokens,
        "cache_bytes": total,
        "attention_cache_bytes": attention,
        "cache_tokens": context,
    }


def check_points(contexts, batches, decode_tokens: int) -> None:
    """Refuses a point that is not positive, naming it."""
    bad = [c for c in contexts if c < 1] + [b for b in batches if b < 1]
    if bad or not contexts or not batches or decode_tokens < 1:
        raise ValueError(
            f"contexts {tuple(contexts)}, batches {tuple(batches)}, decode_tokens "
            f"{decode_tokens}: accepted: positive integers, at least one context and batch"
        )


def build(name: str, size: str, tokens: int, device, dtype):
    """Class `name` at `size` for `tokens` positions, in eval mode on `device`."""
    cls = zoo.get_class(name)
    torch.manual_seed(0)
    return cls(class_config(cls, size, tokens)).to(device=device, dtype=dtype).eval()


def measure_classes(
    names,
    size: str = "124m",
    contexts=CONTEXTS,
    batches=BATCHES,
    decode_tokens: int = DECODE_TOKENS,
    device="cpu",
    dtype=torch.float32,
) -> list[dict]:
    """Every (context, batch) point of every class, the classes interleaved at each point,
    after one untimed warm-up point per class; in point order, then class order."""
    check_points(contexts, batches, decode_tokens)
    tokens = max(contexts) + decode_tokens
    models = {name: build(name, size, tokens, device, dtype) for name in names}
    for model in models.values():
        measure_point(model, min(contexts), 1, 2, device)  # warm-up: kernels, allocator
    points = []
    for context in contexts:
        for batch in batches:
            for name, model in models.items():
                point = measure_point(model, context, batch, decode_tokens, device)
                params = model.get_num_params()
                points.append(
                    {"class": name, "size": size, "dtype": str(dtype), "params": params, **point}
                )
    del models
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    return points


def measure_class(name: str, **kwargs) -> list[dict]:
    """measure_classes of one class."""
    return measure_classes([name], **kwargs)


def measure_all(classes=None, **kwargs) -> list[dict]:
    """measure_classes of `classes` (default: every class zoo.discover() finds)."""
    names = list(classes) if classes is not None else list(zoo.discover())
    return measure_classes(names, **kwargs)


def ratios(points: list[dict], base: str = BASE) -> list[dict]:
    """Each point against `base` at the same context and batch.

    speedup: decode tokens/s over the base's; latency: ms per token over the
    base's; cache_reduction: the base's cache bytes over the class's (12 is "12x
    smaller"), of the whole cache and of the attention part.
    """
    ref = {(p["context"], p["batch"]): p for p in points if p["class"] == base}
    rows = []
    for p in points:
        key = (p["context"], p["batch"])
        if key not in ref:
            raise ValueError(
                f"no {base} point at context {key[0]}, batch {key[1]} to compare "
                f"{p['class']} with; measure {base} at the same points"
            )
        b = ref[key]
        rows.append(
            {
                "class": p["class"],
                "context": p["context"],
                "batch": p["batch"],
                "speedup": p["decode_tokens_per_s"] / b["decode_tokens_per_s"],
                "latency": p["ms_per_token"] / b["ms_per_token"],
                "cache_reduction": b["cache_bytes"] / p["cache_bytes"],
                "attention_cache_reduction": (
                    b["attention_cache_bytes"] / p["attention_cache_bytes"]
                ),
            }
        )
    return rows


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def markdown(points: list[dict], ratio_rows: list[dict]) -> str:
    """One row per point: speed, latency and cache bytes beside the ratios to the base."""
    by_key = {(r["class"], r["context"], r["batch"]): r for r in ratio_rows}
    lines = [
        "| class | context | batch | decode tok/s | ms/token | prefill ms | cache "
        "| x speed | x cache |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        r = by_key[(p["class"], p["context"], p["batch"])]
        lines.append(
            f"| {p['class']} | {p['context']} | {p['batch']} | {p['decode_tokens_per_s']:,.0f} "
            f"| {p['ms_per_token']:.2f} | {p['prefill_ms']:.1f} "
            f"| {_bytes(p['cache_bytes'])} | {r['speedup']:.2f} "
            f"| {r['cache_reduction']:.2f} |"
        )
    return "\n".join(lines) + "\n"
