"""Tabulates and plots metrics across installed runs from their JSONL (and from W&B).

  bazel run //tools/compare -- results/gpt2_ratio_ablation/cpu-1a2b3c4d results/... \
      --metric val_loss --out /tmp/cmp

Every directory given is an installed run (results/<experiment>/<run_id>/,
experiments/install.py); for each run in it (a step and seed, `step08-s1337`)
it reads runs/<run>/metrics.jsonl, the canonical record, and prints a
markdown table with one row per (directory, run): iterations, last training
loss, final and best validation loss and perplexity, median tokens/s. A
measurement's run (no metrics.jsonl) has no row. With --out it also writes
that table as compare.md and a 300 DPI plot of --metric against iteration
for every (directory, run). `--wandb ENTITY/PROJECT/RUN_ID` adds one W&B run,
as experiments/tracking.py mirrors a run (keys `train/<metric>`,
`eval/<metric>`), as another source; it needs a W&B key the way W&B's client
finds one (WANDB_API_KEY, or `wandb login`'s netrc entry) and network. Run
tools/verify_runs first: compare only shows numbers, it does not judge
whether they may be compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from experiments.results import read_jsonl


def load_run(path: str) -> dict[str, list[dict]]:
    """run -> metric records of one installed run directory."""
    runs_dir = os.path.join(path, "runs")
    if not os.path.isdir(runs_dir):
        raise FileNotFoundError(
            f"{path}: no runs/ directory (is it an installed run, results/<experiment>/<run_id>?)"
        )
    out = {}
    for run in sorted(os.listdir(runs_dir)):
        recs = read_jsonl(os.path.join(runs_dir, run, "metrics.jsonl"))
        if recs:
            out[run] = recs
    return out


def load_wandb(spec: str, keys: list[str]) -> dict[str, list[dict]]:
    """run name -> records of one W&B run, as experiments/tracking.py logs a run."""
    from experiments.tracking import wandb_key_available

    if not wandb_key_available():
        raise RuntimeError("--wandb needs a W&B key: WANDB_API_KEY or `wandb login`")
    import wandb

    run = wandb.Api().run(spec)
    recs = []
    for row in run.scan_history():
        for k, v in row.items():
            kind, _, metric = k.partition("/")
            if kind in ("train", "eval") and metric in keys and isinstance(v, int | float):
                recs.append({"iter": row.get("_step"), "kind": kind, metric: v})
    return {run.name: recs}


def summarize(recs: list[dict]) -> dict:
    train = [r for r in recs if r.get("kind") == "train"]
    evals = [r for r in recs if r.get("kind") == "eval" and r.get("val_loss") is not None]
    rates = [r["tokens_per_s"] for r in train if r.get("tokens_per_s")]
    last = evals[-1] if evals else {}
    return {
        "iters": max((r["iter"] for r in train), default=0),
        "train_loss": statistics.fmean(r["loss"] for r in train[-10:]) if train else None,
        "val_loss": last.get("val_loss"),
        "val_ppl": last.get("val_ppl"),
        "best_val_loss": min((r["val_loss"] for r in evals), default=None),
        "tokens_per_s": statistics.median(rates) if rates else None,
    }


def _f(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3f}"
    return str(v)


def table(sources: dict[str, dict[str, list[dict]]]) -> str:
    """One row per (source, run): a source is an installed run directory or a W&B run."""
    cols = ["iters", "train_loss", "val_loss", "val_ppl", "best_val_loss", "tokens_per_s"]
    lines = ["| source | run | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for source, runs in sources.items():
        for run, recs in runs.items():
            s = summarize(recs)
            lines.append(f"| {source} | {run} | " + " | ".join(_f(s[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def plot(sources: dict[str, dict[str, list[dict]]], metric: str, path: str) -> str:
    from experiments import plots

    curves = {}
    for source, runs in sources.items():
        for run, recs in runs.items():
            pts = [(r["iter"], r[metric]) for r in recs if r.get(metric) is not None]
            if pts:
                curves[f"{os.path.basename(source.rstrip('/'))}/{run}"] = pts
    if not curves:
        raise ValueError(f"no run has metric {metric!r}")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pts in curves.items():
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, linewidth=1.0, marker="." if len(pts) < 30 else None, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return plots._save(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="installed run directories")
    ap.add_argument("--wandb", action="append", default=[], help="ENTITY/PROJECT/RUN_ID")
    ap.add_argument("--metric", default="val_loss", help="metric to plot (default val_loss)")
    ap.add_argument("--out", default=None, help="directory for compare.md and the plot")
    args = ap.parse_args(argv)
    if not args.runs and not args.wandb:
        ap.error("give installed run directories or --wandb runs")
    base = os.environ.get("BUILD_WORKING_DIRECTORY", "")
    sources = {r: load_run(os.path.join(base, r)) for r in args.runs}
    for spec in args.wandb:
        sources[f"wandb:{spec}"] = load_wandb(spec, [args.metric, "loss", "val_loss", "val_ppl"])
    md = table(sources)
    print(md, end="")
    if args.out:
        out = os.path.join(base, args.out)
        os.makedirs(out, exist_ok=True)
        from experiments.results import atomic_write_text

        atomic_write_text(os.path.join(out, "compare.md"), md)
        p = plot(sources, args.metric, os.path.join(out, f"compare_{args.metric}.png"))
        print(f"wrote {os.path.join(out, 'compare.md')} and {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
