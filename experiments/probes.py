"""Measuring a built GPT-2: its MLP widths, its cache bytes, its mechanism parameters.

The research checks (experiments/checks.py) compare these measurements with
what the declaration gives; this module only measures, from the model's own
tensors: the cache a prefill leaves (never a re-run of full forwards), the
MLP layers' shapes, and the parameters of the mechanisms that must move in
training (RA-CT gates, learned RA weights, KVSplice's scale and shift).
"""

from __future__ import annotations

import torch

from experiments.checks import MOVED_TOL, Check
from models.gpt2.layers import cache_bytes

# Tokens of the prefill the cache is measured after.
CACHE_PROBE_TOKENS = 32


def measured_mlp_widths(model) -> list[int]:
    """Every block's MLP hidden width (the out features of its first MLP layer)."""
    return [int(block.mlp.c_fc.out_features) for block in model.transformer.h]


@torch.no_grad()
def cache_bytes_per_token(model, tokens: int = CACHE_PROBE_TOKENS) -> dict[str, float]:
    """Bytes per token the model's decode cache holds after one prefill of `tokens`:
    {"attention": the KV cache (every layer's attention part), "total": everything,
    the cross-token MLP's state included}, in the model's own dtype."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    idx = torch.zeros(1, min(tokens, model.config.block_size), dtype=torch.long, device=device)
    _, _, cache = model(idx, use_cache=True)
    model.train(was_training)
    T = idx.shape[1]
    return {"attention": cache_bytes(cache, parts=("attn",)) / T, "total": cache_bytes(cache) / T}


# Mechanism parameters whose movement from init is checked: (what, module class, names).
MOVABLE = (
    ("RA-CT gate", "RACTGate", ("scale", "bias")),
    ("learned RA weight", "AttentionCore", ("ra_logit",)),
    ("KVSplice scale and shift", "KVSplice", ("s", "t")),
)


def mechanism_params(model) -> dict[str, dict[str, torch.Tensor]]:
    """what -> {parameter name: tensor} for every movable mechanism the model has."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for mod_name, mod in model.named_modules():
        for what, cls_name, names in MOVABLE:
            if type(mod).__name__ != cls_name:
                continue
            for n in names:
                p = getattr(mod, n, None)
                if isinstance(p, torch.nn.Parameter):
                    out.setdefault(what, {})[f"{mod_name}.{n}"] = p
    return out


def snapshot(model) -> dict[str, dict[str, torch.Tensor]]:
    """The mechanism parameters' values now (call at build time, before training)."""
    return {
        what: {n: p.detach().clone() for n, p in ps.items()}
        for what, ps in mechanism_params(model).items()
    }


def check_moved(initial: dict, model) -> list[Check]:
    """One check per mechanism: its parameters' mean absolute change from `initial`."""
    now = mechanism_params(model)
    out = []
    for what, before in initial.items():
        drifts = []
        for name, p0 in before.items():
            p = now.get(what, {}).get(name)
            if p is None:
                drifts.append(0.0)
                continue
            drifts.append(float((p.detach().float().cpu() - p0.float().cpu()).abs().mean()))
        least = min(drifts) if drifts else 0.0
        out.append(
            Check(
                f"{what} moved",
                least > MOVED_TOL,
                f"smallest mean abs change over {len(drifts)} tensors {least:.2g} "
                f"(needs > {MOVED_TOL:g})",
            )
        )
    return out
