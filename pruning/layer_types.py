"""Sparsity reached per layer type of a GPT-2: attention, MLP, and the tied head.

A pruned GPT-2's one global sparsity hides where the zeros went. The type of
every prunable weight (masks.py `prunable`: each Linear and Conv2d weight,
a shared one once) is read from its module name, as models/gpt2 lays a
model out:

  head       a weight shared with an nn.Embedding: `lm_head.weight`, tied to
             `transformer.wte` (its zeros are zeros of the token embedding)
  attention  a name with the component `attn`: `transformer.h.<i>.attn.*`
             (c_attn and c_proj; q_proj, kv_down, kv_up, ... for MLA)
  mlp        a name with the component `mlp`: `transformer.h.<i>.mlp.*`
             (c_fc, c_proj, gate, ctx; down, up for MLPSplice)

The tie is checked before the name, so a tied head is "head" wherever it
sits. A prunable weight that matches none of the three is an error naming
it: a report that silently dropped weights would not sum to the global
sparsity.
"""

from __future__ import annotations

import torch.nn as nn

from pruning.masks import prunable

TYPES = ("attention", "mlp", "head")


def layer_type(name: str, tied: bool) -> str:
    """The type of prunable weight `name`; `tied` says it is shared with an nn.Embedding."""
    if tied:
        return "head"
    parts = name.split(".")
    if "attn" in parts:
        return "attention"
    if "mlp" in parts:
        return "mlp"
    raise ValueError(
        f"prunable weight {name!r} has no layer type; accepted: a name with an 'attn' or "
        "'mlp' component, or a weight tied to an nn.Embedding (the head)"
    )


def sparsity_by_type(model) -> dict[str, dict]:
    """type -> {"weights", "zeros", "sparsity"} of every prunable weight; "all" sums the types."""
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    counts = {t: [0, 0] for t in TYPES}
    for name, w in prunable(model):
        kind = layer_type(name, id(w) in embedded)
        counts[kind][0] += w.numel()
        counts[kind][1] += int((w == 0).sum())
    counts["all"] = [sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())]
    return {
        kind: {"weights": n, "zeros": z, "sparsity": z / n if n else 0.0}
        for kind, (n, z) in counts.items()
    }
