"""A run's report: summary.md (one table row per step) and the plots, rebuilt from disk.

`write_summary` reads every step's DONE or FAILED and metrics.jsonl from the
run directory, so the report is the same whether the steps ran now or in an
earlier invocation; experiments/runner.py calls it after every step.
"""

from __future__ import annotations

import math
import os

from experiments import plots
from experiments.results import RunDir, atomic_write_text, read_json, read_jsonl

DEFAULT_COLUMNS = [
    ("step", "step"),
    ("label", "what"),
    ("model_class", "model"),
    ("params", "params"),
    ("kv_bytes_per_token", "KV B/token"),
    ("iters", "iters"),
    ("first_loss", "loss@1"),
    ("final_train_loss", "train loss"),
    ("val_loss", "val loss"),
    ("val_ppl", "val ppl"),
    ("sparsity", "sparsity"),
    ("tokens_per_s_median", "tok/s"),
    ("step_wall_s", "wall s"),
]


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v).replace("|", "/")


def _rows(run: RunDir, steps) -> tuple[list[dict], dict, dict, dict]:
    """(table rows, loss curves, val ppl, (KV bytes, val ppl)) of every step, from disk."""
    rows, curves, ppl, quality = [], {}, {}, {}
    for s in steps:
        res = run.done_result(s.name)
        fail = run.failure(s.name)
        if res:
            row = dict(res, step=s.name, label=s.label, status="done")
            recs = read_jsonl(os.path.join(run.root, "steps", s.name, "metrics.jsonl"))
            curves[s.name] = [(r["iter"], r["loss"]) for r in recs if r.get("kind") == "train"]
            if res.get("val_ppl") is not None:
                ppl[s.name] = res["val_ppl"]
                if res.get("kv_bytes_per_token"):
                    quality[s.name] = (res["kv_bytes_per_token"], res["val_ppl"])
        elif fail:
            row = {"step": s.name, "label": s.label, "status": f"FAILED: {fail.get('reason')}"}
        else:
            row = {"step": s.name, "label": s.label, "status": "pending"}
        rows.append(row)
    return rows, curves, ppl, quality


def _table(run: RunDir, experiment: str, config: dict, rows: list[dict], columns) -> list[str]:
    m = read_json(run.path("manifest.json"), {})
    git = m.get("git", {})
    lines = [
        f"# {experiment} / {os.path.basename(run.root)}",
        "",
        f"Profile `{config.get('profile', {}).get('name', '?')}`, commit "
        f"`{git.get('commit')}`{' (dirty)' if git.get('dirty') else ''}, torch "
        f"{m.get('versions', {}).get('torch')}, device {m.get('hardware', {}).get('device')}"
        f" ({m.get('hardware', {}).get('gpu') or m.get('hardware', {}).get('cpu')}). "
        f"{sum(r['status'] == 'done' for r in rows)} of {len(rows)} steps done. "
        "Losses are cross-entropy in nats; `loss@1` is the first iteration's, `train loss` the "
        "mean of the last 10, `val` the final evaluation.",
        "",
        "| " + " | ".join(h for _, h in columns) + " | status |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k)) for k, _ in columns) + f" | {r['status']} |")
    return lines


def _draw(run: RunDir, experiment: str, curves: dict, ppl: dict, quality: dict) -> None:
    if curves:
        plots.loss_curves(
            curves, run.path("plots", "loss_curves.png"), f"{experiment}: training loss"
        )
    if ppl:
        plots.bar_metric(
            ppl,
            run.path("plots", "val_ppl.png"),
            "validation perplexity",
            f"{experiment}: validation perplexity per step",
        )
    if quality:
        plots.scatter(
            quality,
            run.path("plots", "quality_vs_kv_bytes.png"),
            "KV-cache bytes per token (all layers)",
            "validation perplexity",
            f"{experiment}: quality vs KV-cache size",
        )


def write_summary(
    run: RunDir, experiment: str, steps, config: dict, columns=None, extra_plots=None
):
    """Rewrites summary.md and the plots from what the run directory holds now."""
    rows, curves, ppl, quality = _rows(run, steps)
    lines = _table(run, experiment, config, rows, columns or DEFAULT_COLUMNS)
    _draw(run, experiment, curves, ppl, quality)
    if extra_plots:
        extra_plots(run, {r["step"]: r for r in rows})
    pngs = sorted(p for p in os.listdir(run.path("plots")) if p.endswith(".png"))
    lines += ["", "Plots: " + (", ".join(f"[{p}](plots/{p})" for p in pngs) or "none yet"), ""]
    atomic_write_text(run.path("summary.md"), "\n".join(lines) + "\n")
