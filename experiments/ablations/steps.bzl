"""The ablation registry: every RATIO step and model-variant prefix, declared once.

This file holds literals only. Starlark loads it (experiments/experiments.bzl
lists each experiment's steps from RATIO_STEPS) and Python reads the same text
(registry.py evaluates each literal), so a step exists in exactly one place.

VARIANTS: prefix -> the model class (found by convention in models/gpt2) and
the GPT2Config options that prefix implies.

RATIO_STEPS: step id -> the variant it builds, the GPT2Config options on top of
RATIO_BASE, the optimizer, the pruning (None, or AdamWPrune's options) and a
one-line description. Options are spelled out in full for each step; none is
inherited from another step.
"""

VARIANTS = {
    "B": {"class": "GPT2", "options": {}, "doc": "baseline GPT-2"},
    "RA": {"class": "GPT2_RA", "options": {"ra_learned": False}, "doc": "reciprocal attention, fixed mix"},
    "RALEARN": {"class": "GPT2_RA", "options": {"ra_learned": True}, "doc": "reciprocal attention, learned per layer"},
    "MLA": {"class": "GPT2_MLA", "options": {}, "doc": "multi-head latent attention"},
    "RAMLA": {"class": "GPT2_MLA_RA", "options": {}, "doc": "MLA + reciprocal attention"},
    "RAMLAKV": {"class": "GPT2_MLA_RA_KV", "options": {}, "doc": "MLA + RA + KVSplice"},
    "RAMLAKVM": {"class": "GPT2_MLA_RA_KVM", "options": {}, "doc": "MLA + RA + KVSplice + MLPSplice"},
    "MLAKV": {"class": "GPT2_MLA_KV", "options": {}, "doc": "MLA + KVSplice"},
    "MLAKV2": {"class": "GPT2_MLA_KV2", "options": {}, "doc": "MLA + KVSplice, separate K and V latents"},
    "MLAKV2M": {"class": "GPT2_MLA_KV2M", "options": {}, "doc": "KV2 + MLPSplice"},
}

# GPT-2 124M as the RATIO ablation trains it; each step's options go on top.
RATIO_BASE = {"preset": "124m", "options": {"dropout": 0.1}}

# The ablation's pruning step: AdamWPrune (bitter7) around AdamWSPAM, 50%.
_PRUNE_50 = {"variant": "bitter7", "target": 0.5, "warmup": 1000, "ramp_end": 3000, "frequency": 50}

RATIO_STEPS = {
    0: {"variant": "B", "options": {"mlp_ratio": 4.0}, "optimizer": "adamwspam", "pruning": None, "doc": "baseline, MLP 3072 (1:2.0)"},
    1: {"variant": "B", "options": {"mlp_ratio": 4.0}, "optimizer": "adamwspam", "pruning": _PRUNE_50, "doc": "baseline + 50% pruning"},
    2: {"variant": "B", "options": {"mlp_ratio": 5.0}, "optimizer": "adamwspam", "pruning": None, "doc": "golden ratio, MLP expansion 5.0 (3840)"},
    3: {"variant": "B", "options": {"mlp_ratio": 4.25, "mlp_attn_gate": True}, "optimizer": "adamwspam", "pruning": None, "doc": "2 + MLP attention gate, 4.25 (3264)"},
    4: {"variant": "B", "options": {"mlp_ratio": 4.0, "mlp_attn_gate": True, "mlp_cross_token": True}, "optimizer": "adamwspam", "pruning": None, "doc": "3 + cross-token MLP context, 4.0"},
    5: {"variant": "RA", "options": {"mlp_ratio": 4.0, "ra_alpha": 0.3, "ra_band": 64}, "optimizer": "adamwspam", "pruning": None, "doc": "baseline + RA (alpha 0.3, band 64)"},
    6: {"variant": "RA", "options": {"mlp_ratio": 5.0, "ra_alpha": 0.3, "ra_band": 64}, "optimizer": "adamwspam", "pruning": None, "doc": "RA + expansion 5.0"},
    7: {"variant": "RA", "options": {"mlp_ratio": 4.0, "ra_alpha": 0.3, "ra_band": 64, "mlp_attn_gate": True, "mlp_cross_token": True}, "optimizer": "adamwspam", "pruning": None, "doc": "6 + MLP mechanisms, 4.0"},
    8: {"variant": "MLA", "options": {"mlp_ratio": 4.0, "d_latent": 128}, "optimizer": "adamwspam", "pruning": None, "doc": "MLA, latent 128"},
    9: {"variant": "MLA", "options": {"mlp_ratio": 3.333, "d_latent": 128}, "optimizer": "adamwspam", "pruning": None, "doc": "MLA + expansion 3.333 (2560)"},
    10: {"variant": "MLA", "options": {"mlp_ratio": 2.667, "d_latent": 128, "mlp_attn_gate": True, "mlp_cross_token": True}, "optimizer": "adamwspam", "pruning": None, "doc": "9 + MLP mechanisms, 2.667 (2048)"},
    11: {"variant": "RAMLA", "options": {"mlp_ratio": 3.333, "d_latent": 128, "ra_alpha": 0.3, "ra_band": 64}, "optimizer": "adamwspam", "pruning": None, "doc": "MLA + RA + 3.333"},
    12: {"variant": "RAMLA", "options": {"mlp_ratio": 2.667, "d_latent": 128, "ra_alpha": 0.3, "ra_band": 64, "mlp_attn_gate": True, "mlp_cross_token": True}, "optimizer": "adamwspam", "pruning": None, "doc": "11 + MLP mechanisms, 2.667"},
    13: {"variant": "B", "options": {"mlp_ratio": 4.0, "ract": True, "ract_stat": "topk", "ract_k": 8, "ract_alpha": 0.2, "ract_apply": "output"}, "optimizer": "adamwspam", "pruning": None, "doc": "baseline + RA-CT (topk, k 8, alpha 0.2, on the output)"},
    14: {"variant": "MLA", "options": {"mlp_ratio": 3.333, "d_latent": 128, "ract": True, "ract_stat": "topk", "ract_k": 8, "ract_alpha": 0.2, "ract_apply": "output"}, "optimizer": "adamwspam", "pruning": None, "doc": "MLA + RA-CT, 3.333"},
    15: {"variant": "RAMLA", "options": {"mlp_ratio": 3.333, "d_latent": 128, "ra_alpha": 0.3, "ra_band": 64, "ract": True, "ract_stat": "topk", "ract_k": 8, "ract_alpha": 0.2, "ract_apply": "output"}, "optimizer": "adamwspam", "pruning": None, "doc": "MLA + RA + RA-CT"},
    16: {"variant": "RAMLA", "options": {"mlp_ratio": 2.667, "d_latent": 128, "ra_alpha": 0.3, "ra_band": 64, "mlp_attn_gate": True, "mlp_cross_token": True, "ract": True, "ract_stat": "topk", "ract_k": 8, "ract_alpha": 0.2, "ract_apply": "output"}, "optimizer": "adamwspam", "pruning": None, "doc": "full RATIO: 12 + RA-CT, 2048"},
    17: {"variant": "B", "options": {"mlp_ratio": 4.0, "ract": True, "ract_stat": "topk", "ract_k": 8, "ract_alpha": 0.2, "ract_apply": "weights"}, "optimizer": "adamwspam", "pruning": None, "doc": "13 with RA-CT applied to the attention weights"},
    18: {"variant": "B", "options": {"mlp_ratio": 4.0, "ract": True, "ract_stat": "entropy", "ract_k": 8, "ract_alpha": 0.2, "ract_apply": "output"}, "optimizer": "adamwspam", "pruning": None, "doc": "13 with the entropy statistic"},
}
