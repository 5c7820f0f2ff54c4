"""A KV-cache measurement: one class's cache bytes against theory, per token count.

The "kv_cache" kind of experiments/run_step.py (`measure`). For one class at
its declared preset (kvsplice_cache.bzl: GPT-2 124M dims) it prefills the
model through its KV cache in chunks of the first token count and, after
each chunk, sums the bytes of the tensors the cache actually holds
(models/gpt2/layers.py cache_bytes). Its values hold one row per token count
(measured and theory bytes, relative error, bytes per token, the cache
tensors' shapes and the expected ones), and its checks:

  * cache vs theory: bytes within 5% of the design's at every token count, the
    tensors' shapes as designed ([B, T, d_latent] for MLA, [B, T, d_compressed]
    for KVSplice, [B, H, T, D] for K and V), and linear scaling (bytes per
    token equal within 1% at every length);
  * params: the class's parameter count equals the design's, and for KVSplice
    the parameters the splice holds (scale, shift, compression per latent).
"""

from __future__ import annotations

import torch

from experiments.checks import (
    Check,
    Design,
    check_params,
    expected_params,
    kv_values_per_token_layer,
    splice_params,
)
from models.gpt2 import zoo
from models.gpt2.config import preset
from models.gpt2.layers import KVSplice, cache_bytes

TOLERANCE = 0.05
LINEARITY = 0.01


def config_for(preset_name: str, tokens: list[int]):
    """The GPT2Config every class is measured at."""
    return preset(preset_name, block_size=max(max(tokens), 1024))


def expected_shapes(class_name: str, cfg, B: int, T: int) -> dict[str, tuple]:
    if class_name == "GPT2":
        s = (B, cfg.n_head, T, cfg.head_dim)
        return {"k": s, "v": s}
    if class_name == "GPT2_MLA":
        return {"c": (B, T, cfg.d_latent)}
    if class_name == "GPT2_MLA_KV":
        return {"z": (B, T, cfg.d_compressed)}
    return {"zk": (B, T, cfg.d_compressed), "zv": (B, T, cfg.d_compressed)}


@torch.no_grad()
def measure_class(class_name, tokens, device, dtype, preset_name="124m", batch=1) -> dict:
    """One class's cache, measured after each chunk of a chunked prefill."""
    cfg = config_for(preset_name, tokens)
    torch.manual_seed(0)
    model = zoo.get_class(class_name)(cfg).to(device=device, dtype=dtype).eval()
    elem = torch.tensor([], dtype=dtype).element_size()
    per_tok_theory = kv_values_per_token_layer(class_name, cfg) * cfg.n_layer * elem * batch
    chunk = tokens[0]
    for t in tokens:
        if t % chunk:
            raise ValueError(f"tokens must be multiples of the first ({chunk}); got {t}")
    rows, cache, done = [], None, 0
    g = torch.Generator().manual_seed(0)
    for t in sorted(tokens):
        while done < t:
            idx = torch.randint(cfg.vocab_size, (batch, chunk), generator=g).to(device)
            _, _, cache = model(idx, cache=cache, use_cache=True)
            done += chunk
        measured = cache_bytes(cache, parts=("attn",))
        theory = per_tok_theory * t
        shapes = {k: tuple(v.shape) for k, v in cache["layers"][0].get("attn", {}).items()}
        want = expected_shapes(class_name, cfg, batch, t)
        rows.append(
            {
                "class": class_name,
                "tokens": t,
                "measured_bytes": measured,
                "theory_bytes": theory,
                "rel_error": measured / theory - 1.0,
                "bytes_per_token": measured / t,
                "shapes": {k: list(v) for k, v in shapes.items()},
                "shapes_ok": all(shapes.get(k) == v for k, v in want.items()),
                "expected_shapes": {k: list(v) for k, v in want.items()},
            }
        )
    return {
        "class": class_name,
        "params": model.get_num_params(),
        "splice_params": sum(
            p.numel() for m in model.modules() if isinstance(m, KVSplice) for p in m.parameters()
        ),
        "d_latent": cfg.d_latent,
        "d_compressed": cfg.d_compressed,
        "n_layer": cfg.n_layer,
        "n_embd": cfg.n_embd,
        "rows": rows,
    }


def cache_failures(result: dict) -> list[str]:
    """What is wrong with one class's cache: bytes off theory, shapes, non-linear growth."""
    failures = []
    per_tok = [row["bytes_per_token"] for row in result["rows"]]
    for row in result["rows"]:
        if abs(row["rel_error"]) > TOLERANCE:
            failures.append(
                f"{result['class']} at {row['tokens']} tokens: measured "
                f"{row['measured_bytes']:,} B vs theory {row['theory_bytes']:,} B "
                f"({row['rel_error']:+.1%})"
            )
        if not row["shapes_ok"]:
            failures.append(
                f"{result['class']} at {row['tokens']} tokens: cache shapes "
                f"{row['shapes']} != expected {row['expected_shapes']}"
            )
    if max(per_tok) > min(per_tok) * (1 + LINEARITY):
        failures.append(f"{result['class']}: bytes per token vary with length {per_tok}")
    return failures


def class_checks(result: dict, cfg) -> list[Check]:
    """The cache check, the parameters by design, and what KVSplice adds over MLA."""
    failures = cache_failures(result)
    ok = f"within {TOLERANCE:.0%} of theory, linear in T, shapes as designed"
    out = [Check("cache vs theory", not failures, "; ".join(failures) or ok)]
    out.append(check_params(result["class"], cfg, result["params"]))
    design = Design.of(result["class"])
    if design.splice:
        want = cfg.n_layer * (2 if design.split_kv else 1) * splice_params(cfg)
        base = expected_params("GPT2_MLA", cfg)
        got = result["splice_params"]
        out.append(
            Check(
                "KVSplice params",
                got == want,
                f"{result['class']}: KVSplice holds {got:,} parameters, {want:,} by design: "
                f"{got / base:.2%} of GPT2_MLA's {base:,}",
            )
        )
    return out


def measure(spec, profile, device: str, data_root, log):
    """The "kv_cache" kind: (values, checks) of one class's measurement."""
    declaration = spec.declaration
    tokens = sorted(int(t) for t in declaration["tokens"])
    dtype = getattr(torch, declaration["dtype"])
    result = measure_class(declaration["class"], tokens, device, dtype, declaration["preset"])
    log(f"{declaration['class']}: {result['rows'][-1]['bytes_per_token']:,.0f} B/token")
    cfg = config_for(declaration["preset"], tokens)
    return result, [c.to_dict() for c in class_checks(result, cfg)]
