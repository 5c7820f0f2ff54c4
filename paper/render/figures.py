"""Draws the paper's figures from its data files, reproducibly, with matplotlib.

    figures.py FIGURE --out OUT.pdf FILE...

FIGURE is one of FIGURES below; FILE... are the data files of its data set.
The PDF is byte-identical from run to run: the Agg-family PDF backend, fixed
fonts (DejaVu, embedded as TrueType), a fixed svg.hashsalt, and no creation
date in the metadata.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

from paper.render import data
from paper.render.data import DataError

# Inside a Bazel action there is no HOME; matplotlib needs somewhere to cache.
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "pdf.fonttype": 42,
    "svg.hashsalt": "knlp-paper",
    "figure.dpi": 100,
    "lines.linewidth": 1.2,
}
WIDTH = 3.4  # inches: one IEEE column
METADATA = {"CreationDate": None, "Creator": "knlp paper/render/figures.py"}


def save(fig, out):
    fig.tight_layout(pad=0.3)
    fig.savefig(out, format="pdf", metadata=METADATA)
    plt.close(fig)


def kv_cache(files, out):
    d = data.kv_cache(files)
    rows = d["rows"]
    dtype = "float16" if any(r["dtype"] == "float16" for r in rows) else rows[0]["dtype"]
    fig, ax = plt.subplots(figsize=(WIDTH, 2.2))
    labels = {"standard": "standard K,V", "mla": "MLA latent", "kvsplice": "KVSplice latent"}
    for variant, marker in zip(data.KV_VARIANTS, "osD", strict=True):
        pts = sorted(
            (r["tokens"], r["model_cache_bytes"] / 2**20)
            for r in rows
            if r["variant"] == variant and r["dtype"] == dtype
        )
        ax.plot(*zip(*pts, strict=True), marker=marker, label=labels[variant])
    ax.set_xlabel("tokens decoded")
    ax.set_ylabel(f"model KV cache (MiB, {dtype})")
    ax.set_title("Measured cache size, GPT-2 124M shapes (CPU)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    save(fig, out)


def pruning(files, out):
    d = data.pruning(files)
    dense, _ = d["dense"]
    fig, ax = plt.subplots(figsize=(WIDTH, 2.2))
    for method, marker in (("magnitude", "o"), ("random", "s")):
        pts = sorted(
            (t, s["acc"] * 100, s["acc_std"] * 100)
            for (m, t), s in d["summary"].items()
            if m == method
        )
        if pts:
            x, y, e = zip(*pts, strict=True)
            ax.errorbar([100 * v for v in x], y, yerr=e, marker=marker, capsize=2, label=method)
    ax.axhline(dense * 100, color="gray", linestyle="--", linewidth=0.8, label="dense")
    ax.set_xlabel("target sparsity (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Digits MLP, global pruning with cubic ramp (CPU)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    save(fig, out)


def ratio_cpu(files, out):
    d = data.ratio_cpu(files)
    configs = d["summary"]["configs"]
    fig, ax = plt.subplots(figsize=(WIDTH, 2.2))
    for name in sorted(configs)[:2]:
        by_step = {}
        for r in d["curves"]:
            if r["config"] == name:
                by_step.setdefault(r["step"], []).append(r["val_loss"])
        steps = sorted(by_step)
        mean = [sum(by_step[s]) / len(by_step[s]) for s in steps]
        lo = [min(by_step[s]) for s in steps]
        hi = [max(by_step[s]) for s in steps]
        c = configs[name]
        ratio = c["params"]["mlp"] / c["params"]["attention"]
        line = ax.plot(steps, mean, label=f"{name.split('_')[0]}: attn:MLP 1:{ratio:.1f}")[0]
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation loss (nats/byte)")
    ax.set_ylim(top=min(4.0, ax.get_ylim()[1]))
    ax.set_title("Byte-level GPT on stdlib text (CPU)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    save(fig, out)


def decode_cpu(files, out):
    d = data.decode_cpu(files)
    rows = d["rows"]
    fig, ax = plt.subplots(figsize=(WIDTH, 2.3))
    labels = {"standard": "standard K,V", "mla": "MLA latent"}
    for variant, marker in (("standard", "o"), ("mla", "s")):
        for batch, style in zip(sorted({r["batch"] for r in rows}), ("-", "--"), strict=False):
            pts = sorted(
                (r["kv_bytes"] / 2**20, r["median_us"] / 1000)
                for r in rows
                if r["variant"] == variant and r["batch"] == batch
            )
            ax.plot(*zip(*pts, strict=True), style, marker=marker, markersize=3,
                    label=f"{labels[variant]}, batch {batch}")  # fmt: skip
    gemv = sorted((r["kv_bytes"] / 2**20, r["kv_bytes"] / r["gemv_gbps"] / 1e6) for r in rows)
    ax.plot(*zip(*gemv, strict=True), ".", color="gray", markersize=3,
            label="GEMV over the same bytes")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("KV cache read per step (MiB)")
    ax.set_ylabel("median step time (ms)")
    ax.set_title("One decode attention step (CPU, one thread)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False, fontsize=6)
    save(fig, out)


FIGURES = {
    "kv_cache": kv_cache,
    "pruning": pruning,
    "ratio_cpu": ratio_cpu,
    "decode_cpu": decode_cpu,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", help="one of: " + ", ".join(FIGURES))
    parser.add_argument("--out", required=True)
    parser.add_argument("files", nargs="*")
    args = parser.parse_intermixed_args(argv)
    if args.figure not in FIGURES:
        print(f"figures: unknown figure {args.figure!r}; accepted: {', '.join(FIGURES)}")
        return 2
    plt.rcdefaults()
    plt.rcParams.update(STYLE)
    try:
        FIGURES[args.figure](args.files, Path(args.out))
    except DataError as err:
        print(f"figures: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
