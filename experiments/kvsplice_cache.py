"""KVSplice cache-memory verification: measured cache bytes against theory, per token count.

  bazel run //experiments:kvsplice_cache                    # GPT-2 124M dims, CPU
  bazel run //experiments:kvsplice_cache -- --tokens 256,512,1024 --device cuda

For standard attention (GPT2), MLA (GPT2_MLA), KVSplice (GPT2_MLA_KV) and
two-latent KVSplice (GPT2_MLA_KV2) at GPT-2 124M's dimensions, it prefills
the model through its KV cache in chunks and, after each chunk, sums the
bytes of the tensors the cache actually holds (models/gpt2/layers.py,
cache_bytes). It checks:

  * the cache tensors' shapes: [B, T, d_latent] for MLA, [B, T, d_compressed]
    for KVSplice, [B, H, T, D] for K and V of standard attention;
  * measured bytes within 5% of theory at every token count
    (per token and layer: 2 * n_embd values for standard attention, d_latent
    for MLA, d_latent * kv_ratio for KVSplice, twice that with two latents);
  * linear scaling: bytes per token equal (within 1%) at every length.

Its research checks (experiments/checks.py) add: every class's parameter
count equals the design's, and KVSplice holds exactly the parameters its
design gives (scale, shift and the compression per latent), reported as a
share of the MLA base. Nothing trains here, so whether KVSplice's scale and
shift move is checked by gpt2_variants.

It writes results/kvsplice_cache/<run_id>/ with manifest.json, json/cache.json,
a table in summary.md, summary.json (one row per class and token count, the
checks per class; experiments/summary.py's schema) and plots/cache_bytes.png,
and exits 1 if a cache check fails (or, with --strict, a research check).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from experiments import plots, summary
from experiments.checks import (
    Check,
    Design,
    check_params,
    expected_params,
    kv_values_per_token_layer,
    splice_params,
)
from experiments.results import (
    RunDir,
    atomic_write_json,
    atomic_write_text,
    build_manifest,
    config_hash,
    exit_on_results_error,
    run_target,
    workspace_dir,
    write_manifest,
)
from models.gpt2 import zoo
from models.gpt2.config import preset
from models.gpt2.layers import KVSplice, cache_bytes

EXPERIMENT = "kvsplice_cache"
REPORT = summary.Report(
    metric="bytes_per_token", label="KV-cache bytes per token", lower_is_better=True, compare=False
)
# summary.json's runs rows: one per (class, T), all from the measurement.
RUN_FIELDS = {
    k: k
    for k in ("tokens", "measured_bytes", "theory_bytes", "bytes_per_token", "rel_error", "params")
}
CLASSES = ["GPT2", "GPT2_MLA", "GPT2_MLA_KV", "GPT2_MLA_KV2"]
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


def _attn_tensors(cache) -> dict[str, torch.Tensor]:
    return {k: v for k, v in cache["layers"][0].get("attn", {}).items() if torch.is_tensor(v)}


@torch.no_grad()
def measure(
    class_name: str,
    tokens: list[int],
    device: str,
    dtype: torch.dtype,
    preset_name: str = "124m",
    batch: int = 1,
) -> dict:
    cfg = config_for(preset_name, tokens)
    torch.manual_seed(0)
    model = zoo.get_class(class_name)(cfg).to(device=device, dtype=dtype).eval()
    elem = torch.tensor([], dtype=dtype).element_size()
    per_tok_theory = kv_values_per_token_layer(class_name, cfg) * cfg.n_layer * elem * batch
    chunk = tokens[0]
    for t in tokens:
        if t % chunk:
            raise ValueError(f"--tokens must be multiples of the first ({chunk}); got {t}")
    rows, cache, done = [], None, 0
    g = torch.Generator().manual_seed(0)
    for t in sorted(tokens):
        while done < t:
            idx = torch.randint(cfg.vocab_size, (batch, chunk), generator=g).to(device)
            _, _, cache = model(idx, cache=cache, use_cache=True)
            done += chunk
        measured = cache_bytes(cache)
        theory = per_tok_theory * t
        shapes = {k: tuple(v.shape) for k, v in _attn_tensors(cache).items()}
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


def check(results: list[dict]) -> list[str]:
    failures = []
    for r in results:
        per_tok = [row["bytes_per_token"] for row in r["rows"]]
        for row in r["rows"]:
            if abs(row["rel_error"]) > TOLERANCE:
                failures.append(
                    f"{r['class']} at {row['tokens']} tokens: measured "
                    f"{row['measured_bytes']:,} B vs theory {row['theory_bytes']:,} B "
                    f"({row['rel_error']:+.1%})"
                )
            if not row["shapes_ok"]:
                failures.append(
                    f"{r['class']} at {row['tokens']} tokens: cache shapes "
                    f"{row['shapes']} != expected {row['expected_shapes']}"
                )
        if max(per_tok) > min(per_tok) * (1 + LINEARITY):
            failures.append(f"{r['class']}: bytes per token vary with length {per_tok}")
    return failures


def research_checks(results: list[dict], cfg) -> list[Check]:
    """Parameters by design, and what KVSplice adds over its MLA base; failing first."""
    out = []
    for r in results:
        out.append(check_params(r["class"], cfg, r["params"]))
        design = Design.of(r["class"])
        if not design.splice:
            continue
        want = cfg.n_layer * (2 if design.split_kv else 1) * splice_params(cfg)
        base = expected_params("GPT2_MLA", cfg)
        out.append(
            Check(
                "KVSplice params",
                r["splice_params"] == want,
                f"{r['class']}: KVSplice holds {r['splice_params']:,} parameters, "
                f"{want:,} by design: {r['splice_params'] / base:.2%} of GPT2_MLA's {base:,}",
            )
        )
    return sorted(out, key=lambda c: c.ok)


def summary_json(run: RunDir, results: list[dict], cfg) -> dict:
    """summary.json: one runs row per (class, T); per class its cache and research checks."""
    rows = [
        {
            "step": r["class"],
            "group": r["class"],
            "label": r["class"],
            "seed": None,
            "status": "done",
            "params": r["params"],
            **row,
        }
        for r in results
        for row in r["rows"]
    ]
    found = []
    for r in results:
        failed = check([r])
        found += [(r["class"], Check("cache vs theory", False, f)) for f in failed]
        if not failed:
            ok = f"within {TOLERANCE:.0%} of theory, linear in T, shapes as designed"
            found.append((r["class"], Check("cache vs theory", True, ok)))
        found += [(r["class"], c) for c in research_checks([r], cfg)]
    found.sort(key=lambda sc: sc[1].ok)
    return summary.summary_record(run, EXPERIMENT, rows, found, REPORT, RUN_FIELDS)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="256,512,1024")
    ap.add_argument("--classes", default=",".join(CLASSES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--preset", default="124m")
    ap.add_argument("--run-id", default=None)
    ap.add_argument("--results-dir", default=None)
    ap.add_argument(
        "--strict", action="store_true", help="exit non-zero when a research check fails"
    )
    args = ap.parse_args(argv)
    try:
        tokens = sorted(int(t) for t in args.tokens.split(","))
        classes = [c.strip() for c in args.classes.split(",")]
        for c in classes:
            if c not in CLASSES:
                raise ValueError(
                    f"class {c!r} has no cache theory here; valid: {', '.join(CLASSES)}"
                )
    except ValueError as e:
        print(f"{EXPERIMENT}: {e}", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    config = {
        "tokens": tokens,
        "classes": classes,
        "device": args.device,
        "dtype": args.dtype,
        "preset": args.preset,
        "tolerance": TOLERANCE,
    }
    root = args.results_dir or os.path.join(workspace_dir(), "results")
    run_id = args.run_id or f"{args.device.split(':')[0]}-{config_hash(config)[:8]}"
    run = RunDir(os.path.join(root, EXPERIMENT, run_id))
    m = build_manifest(
        EXPERIMENT,
        run_id,
        run_target(EXPERIMENT),
        config,
        {"dtype": args.dtype, "dataset": None},
        args.device,
        argv=sys.argv[1:] if argv is None else argv,
    )
    write_manifest(run, m)
    results = [measure(c, tokens, args.device, dtype, args.preset) for c in classes]
    failures = check(results)
    research = research_checks(results, config_for(args.preset, tokens))
    base = {row["tokens"]: row["measured_bytes"] for row in results[0]["rows"]}
    lines = [
        f"# KVSplice cache memory, {args.preset} dims, {args.dtype}, batch 1",
        "",
        f"Measured = bytes of the tensors in the KV cache after prefilling T tokens; theory "
        f"from the design; tolerance {TOLERANCE:.0%}. `{classes[0]} / class` is how many times "
        f"smaller than {classes[0]}'s the cache is at the same T.",
        "",
        "| class | T | cache tensors (layer 0) | measured B | theory B | error | B/token | "
        f"{classes[0]} / class |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for row in r["rows"]:
            shapes = ", ".join(f"{k} {tuple(v)}" for k, v in row["shapes"].items())
            lines.append(
                f"| {r['class']} | {row['tokens']} | {shapes} | {row['measured_bytes']:,} | "
                f"{row['theory_bytes']:,} | {row['rel_error']:+.2%} | "
                f"{row['bytes_per_token']:,.0f} | "
                f"{base[row['tokens']] / row['measured_bytes']:.1f}x |"
            )
    lines += ["", "Checks: " + ("all passed." if not failures else "FAILED:")]
    lines += [f"- {f}" for f in failures]
    lines += [
        "",
        "## Research checks",
        "",
        f"{sum(not c.ok for c in research)} of {len(research)} checks failed. This run trains "
        "nothing, so whether KVSplice's scale and shift move is checked where it trains "
        "(`gpt2_variants`).",
        "",
        "| result | check | detail |",
        "|---|---|---|",
    ]
    lines += [f"| {'pass' if c.ok else '**FAIL**'} | {c.name} | {c.detail} |" for c in research]
    lines += ["", "Plot: [cache_bytes.png](plots/cache_bytes.png)", ""]
    curves = {
        r["class"]: [(row["tokens"], row["measured_bytes"] / 2**20) for row in r["rows"]]
        for r in results
    }
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for label, pts in curves.items():
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel("tokens in cache")
    ax.set_ylabel("KV-cache MiB (all layers, batch 1)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"KV-cache memory, GPT-2 {args.preset} dims, {args.dtype}")
    plots._save(fig, run.path("plots", "cache_bytes.png"))
    out = {
        "results": results,
        "failures": failures,
        "checks": [c.to_dict() for c in research],
    }
    atomic_write_json(run.path("json", "cache.json"), out)
    atomic_write_text(run.path("summary.md"), "\n".join(lines) + "\n")
    atomic_write_json(
        run.path("summary.json"), summary_json(run, results, config_for(args.preset, tokens))
    )
    run.mark_done("measure", {"failures": failures})
    print("\n".join(lines))
    print(f"results: {run.root}", file=sys.stderr)
    return 1 if failures or (args.strict and not all(c.ok for c in research)) else 0


if __name__ == "__main__":
    sys.exit(exit_on_results_error(main))
