"""Research checks: did each step build what steps.bzl declares, and did its mechanisms act?

A run's summary.md lists these under "Research checks", failing checks first;
with --strict a failed check makes the run's exit status non-zero. Every
expected number comes from the declaration (the step's GPT2Config and the
class's name, composed as in the research table of models/gpt2), never from
the model under test; the model only supplies what is measured.

Per run (experiments/gpt2_step.py computes them when the run finishes, into its
result; the measured numbers come from experiments/probes.py):
  * parameters: the model's count equals the count the design gives for the
    class at the step's config (`expected_params`);
  * MLP width: every block's hidden width equals the declared one;
  * KV bytes (MLA classes): measured attention-cache bytes per token equal
    the design's values per token and layer (`kv_values_per_token_layer`);
  * sparsity (pruned steps): reached within 1% of the target;
  * moved (RA-CT gates, learned RA weights, KVSplice scale and shift): the
    parameter's mean absolute change from its value at build time is above
    MOVED_TOL, so the mechanism learned something.
Per run, in the report (experiments/report.py, from every result):
  * learned: the final validation loss is at least 30% below the unigram
    entropy of the validation tokens (data/stats.py);
  * KVSplice quality: its mean validation loss is at most 1.4% above its MLA
    base's (research-domain: more means a bug), unless the gap is inside the
    seed noise (twice the pooled standard deviation: a tolerance on a cost,
    kept as its own rule; the Steps table's verdicts are experiments/verdicts.py's
    paired tests).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

MOVED_TOL = 1e-3
SPARSITY_TOL = 0.01
LEARNED_FRACTION = 0.7  # val loss <= 70% of the unigram entropy
KVSPLICE_COST = 0.014  # KVSplice may cost at most 1.4% val loss over its MLA base


@dataclass(frozen=True)
class Check:
    name: str  # what is checked: "params", "MLP width", "KV bytes", ...
    ok: bool
    detail: str  # expected and measured, in words

    def to_dict(self) -> dict:
        return asdict(self)


def table(found: list, subject: str, detail=str) -> list[str]:
    """The Research checks table of a summary.md: markdown lines, a row per check.

    `found` holds (subject, Check) pairs in the order to print (failing first);
    `subject` names its column ("run", "class"); `detail` formats a detail.
    """
    lines = [f"| result | {subject} | check | detail |", "|---|---|---|---|"]
    lines += [
        f"| {'pass' if c.ok else '**FAIL**'} | {s} | {c.name} | {detail(c.detail)} |"
        for s, c in found
    ]
    return lines


# ---------------------------------------------------------------- the design


@dataclass(frozen=True)
class Design:
    """The mechanisms a class name composes (models/gpt2: GPT2_MLA_RA_KVM, ...)."""

    ra: bool
    mla: bool
    splice: bool  # KVSplice on the latent
    split_kv: bool  # separate K and V latents (KV2)
    mlp_splice: bool  # MLPSplice (a KV token ending in M)

    @classmethod
    def of(cls, class_name: str) -> Design:
        parts = class_name.split("_")[1:]
        kv = [p for p in parts if p.startswith("KV")]
        return cls(
            ra="RA" in parts,
            mla="MLA" in parts,
            splice=bool(kv),
            split_kv=any(p.startswith("KV2") for p in kv),
            mlp_splice=any(p.endswith("M") for p in kv),
        )


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


def splice_params(cfg) -> int:
    """One KVSplice: scale and shift over the latent, and the [d_c, d] compression."""
    return 2 * cfg.d_latent + cfg.d_compressed * cfg.d_latent


def _attention_params(d: Design, cfg) -> int:
    C, L, b = cfg.n_embd, cfg.d_latent, cfg.bias
    if not d.mla:
        n = _linear(C, 3 * C, b) + _linear(C, C, b)
    elif d.split_kv:
        n = _linear(C, C, b) * 2 + 2 * (_linear(C, L, b) + _linear(L, C, b))
        n += 2 * splice_params(cfg)
    else:
        n = _linear(C, C, b) * 2 + _linear(C, L, b) + _linear(L, 2 * C, b)
        n += splice_params(cfg) if d.splice else 0
    n += 1 if (d.ra and cfg.ra_learned) else 0  # the per-layer RA logit
    n += 2 * cfg.n_head if cfg.ract else 0  # RA-CT gate scale and bias per head
    return n


def mlp_width(d: Design, cfg) -> int:
    """The declared hidden width: mlp_ratio x n_embd, RATIO-rounded; 4 d_latent for MLPSplice."""
    return 4 * cfg.d_latent if d.mlp_splice else cfg.mlp_dim


def _mlp_params(d: Design, cfg) -> int:
    C, b, H = cfg.n_embd, cfg.bias, mlp_width(d, cfg)
    if d.mlp_splice:
        L = cfg.d_latent
        return C * L + _linear(L, H, b) + _linear(H, L, b) + (0 if cfg.mlp_splice_tied else L * C)
    extra = int(cfg.mlp_attn_gate) + int(cfg.mlp_cross_token)
    return _linear(C, H, b) * (1 + extra) + _linear(H, C, b)


def expected_params(class_name: str, cfg) -> int:
    """Parameters without the position embedding (as get_num_params), from the design alone."""
    d = Design.of(class_name)
    ln = cfg.n_embd * (2 if cfg.bias else 1)
    block = 2 * ln + _attention_params(d, cfg) + _mlp_params(d, cfg)
    return cfg.vocab_size * cfg.n_embd + cfg.n_layer * block + ln  # tied embedding, ln_f


def kv_values_per_token_layer(class_name: str, cfg) -> int:
    """Values the attention cache keeps per token and layer, by design.

    Standard attention keeps K and V (2 n_embd), MLA its latent (d_latent),
    KVSplice the compressed latent (d_latent x kv_ratio), KV2 two of them.
    Reciprocal attention also keeps every query (n_embd) to score k_i . q_j.
    """
    d = Design.of(class_name)
    if not d.mla:
        n = 2 * cfg.n_embd
    elif d.splice:
        n = cfg.d_compressed * (2 if d.split_kv else 1)
    else:
        n = cfg.d_latent
    return n + (cfg.n_embd if d.ra else 0)


# ---------------------------------------------------------------- the checks


def check_params(class_name: str, cfg, measured: int) -> Check:
    want = expected_params(class_name, cfg)
    return Check(
        "params",
        measured == want,
        f"{measured:,} measured, {want:,} by design ({class_name}, {cfg.n_layer} x {cfg.n_embd})",
    )


def check_mlp_width(class_name: str, cfg, widths: list[int]) -> Check:
    want = mlp_width(Design.of(class_name), cfg)
    ok = len(widths) == cfg.n_layer and all(w == want for w in widths)
    return Check("MLP width", ok, f"{sorted(set(widths))} measured, {want} declared")


def check_kv_bytes(class_name: str, cfg, measured: float, element_bytes: int = 4) -> Check:
    want = kv_values_per_token_layer(class_name, cfg) * cfg.n_layer * element_bytes
    return Check(
        "KV bytes",
        math.isclose(measured, want, rel_tol=1e-6),
        f"{measured:,.0f} B/token measured, {want:,} by design",
    )


def check_sparsity(reached: float, target: float) -> Check:
    return Check(
        "sparsity",
        abs(reached - target) <= SPARSITY_TOL,
        f"{reached:.2%} reached, target {target:.0%} (within {SPARSITY_TOL:.0%})",
    )


def check_learned(val_loss: float | None, entropy: float) -> Check:
    bound = LEARNED_FRACTION * entropy
    ok = val_loss is not None and math.isfinite(val_loss) and val_loss <= bound
    shown = "none" if val_loss is None else f"{val_loss:.3f}"
    return Check(
        "learned",
        ok,
        f"val loss {shown}, needs <= {bound:.3f} ({1 - LEARNED_FRACTION:.0%} below the "
        f"unigram entropy {entropy:.3f})",
    )


def kvsplice_base(class_name: str) -> str | None:
    """The MLA class a KVSplice class adds only KVSplice to (GPT2_MLA_RA_KV -> GPT2_MLA_RA).

    None for classes without KVSplice, and for MLPSplice ones (KVM, KV2M),
    which change the MLP as well.
    """
    parts = class_name.split("_")
    kv = [p for p in parts if p.startswith("KV")]
    if len(kv) != 1 or kv[0] not in ("KV", "KV2"):
        return None
    return "_".join(p for p in parts if p != kv[0])


def check_kvsplice_cost(kv: list[float], base: list[float], base_name: str) -> Check:
    """KVSplice's mean val loss at most KVSPLICE_COST above its MLA base's, beyond noise."""
    cost = float(np.mean(kv)) / float(np.mean(base)) - 1.0
    noise = pooled_std(kv, base)
    gap = float(np.mean(kv) - np.mean(base))
    beyond_noise = noise is None or gap > 2 * noise
    ok = cost <= KVSPLICE_COST or not beyond_noise
    spread = "1 seed" if noise is None else f"2 x pooled std {2 * noise:.3f}"
    return Check(
        "KVSplice quality",
        ok,
        f"val loss {cost:+.2%} vs {base_name} (allowed {KVSPLICE_COST:.1%}; {spread})",
    )


# ---------------------------------------------------------------- KVSplice's noise


def pooled_std(a: list[float], b: list[float]) -> float | None:
    """The two samples' pooled standard deviation; None when either has one value."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = np.var(a, ddof=1), np.var(b, ddof=1)
    return float(math.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / (len(a) + len(b) - 2)))
