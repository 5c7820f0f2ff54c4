"""Draws one data set's figure from its imported run, reproducibly, with matplotlib.

    figures.py NAME --out OUT.pdf FILE...

NAME is the data set (paper/data/NAME/) and FILE... its files; the drawing
is chosen by the manifest's `experiment` from RENDERERS (the same keys as
texgen.py's). The numbers come from paper/render/data.py, as the tables' do.
The PDF is byte-identical from run to run: the Agg-family PDF backend, fixed
fonts (DejaVu, embedded as TrueType), a fixed svg.hashsalt, and no creation
date in the metadata.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

from paper.render import data, texgen
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
    "legend.fontsize": 6,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "pdf.fonttype": 42,
    "svg.hashsalt": "knlp-paper",
    "figure.dpi": 100,
    "lines.linewidth": 1.2,
}
WIDTH = 3.4  # inches: one IEEE column
WIDE = 7.0  # both columns: curves of up to nineteen steps beside their differences (figure*)
METADATA = {"CreationDate": None, "Creator": "knlp paper/render/figures.py"}


def save(fig, out):
    fig.tight_layout(pad=0.3)
    fig.savefig(out, format="pdf", metadata=METADATA)
    plt.close(fig)


def _curves(ax, steps, bands, title):
    """Val loss against iteration per step: the mean over seeds, the min-max band."""
    for step in steps:
        pts = bands.get(step, [])
        if not pts:
            continue
        it, mean, lo, hi = zip(*pts, strict=True)
        line = ax.plot(it, mean, marker="." if len(it) < 4 else None, label=step)[0]
        if lo != hi:
            ax.fill_between(it, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(title)


def _forest(ax, rows, title):
    """Each compared step's difference from its reference with its 95% interval, sorted by
    the difference; a step without an interval (one seed) is its point alone."""
    rows = sorted(rows, key=lambda r: r["difference"])
    colours = {"better": "tab:green", "worse": "tab:red", "not resolved": "tab:gray"}
    for y, r in enumerate(rows):
        colour = colours[r["verdict"]]
        if r["low"] is not None:
            ax.plot([r["low"], r["high"]], [y, y], color=colour, linewidth=1.2)
        ax.plot([r["difference"]], [y], marker="o", markersize=3, color=colour)
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.margins(x=0.15, y=0.1)  # zero and the widest interval clear of the frame
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["step"] for r in rows])
    ax.set_xlabel("difference from the reference (nats/token)")
    ax.set_title(title)
    if not rows:
        ax.text(0.5, 0.5, "no comparison", ha="center", va="center", transform=ax.transAxes)


def ratio(ds, fig):
    d = data.ratio(ds)
    curves, forest = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    _curves(
        curves, [st["step"] for st in d["steps"]], d["bands"], f"RATIO ablation, run {ds.run_id}"
    )
    curves.legend(frameon=False, ncol=2, fontsize=5)
    _forest(forest, d["comparisons"], f"against {d['reference']} (green better, red worse)")


def gpt2_pruning(ds, fig):
    d = data.gpt2_pruning(ds)
    forest, curves = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 3]})
    _forest(forest, d["comparisons"], "against the dense step (green better, red worse)")
    _curves(
        curves, [st["step"] for st in d["steps"]], d["bands"], f"GPT-2 pruning, run {ds.run_id}"
    )
    curves.legend(frameon=False, ncol=2, fontsize=5)


def kv_cache(ds, fig):
    ax = fig.subplots()
    d = data.kv_cache(ds)
    for c, marker in zip(d["classes"], "osD^v<>", strict=False):
        tokens, nbytes = zip(*c["points"], strict=True)
        ax.plot(tokens, [b / 2**20 for b in nbytes], marker=marker, label=c["class"])
    ax.set_xlabel("tokens in the cache (T)")
    ax.set_ylabel("KV cache (MiB)")
    ax.set_title(f"Measured cache size, run {ds.run_id}")
    ax.legend(frameon=False)


def pruning(ds, fig):
    ax = fig.subplots()
    d = data.pruning(ds)
    if d["points"]:
        _, sparsity, acc = zip(*d["points"], strict=True)
        ax.scatter([100 * s for s in sparsity], [100 * a for a in acc], s=10, label="pruned run")
    for c in d["cells"]:
        if c["sparsity"] is None:  # a dense cell: its accuracy as a reference line
            ax.axhline(100 * c["acc"], color="gray", linestyle="--", linewidth=0.8)
    ax.set_xlabel("sparsity reached (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Pruning matrix, run {ds.run_id} (dashed: dense cells)")


def decode(ds, fig):
    ax = fig.subplots()
    d = data.decode(ds)
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("KV-cache bandwidth (GB/s)")
    if not d["measured"]:
        ax.text(0.5, 0.5, texgen.NOT_MEASURED, ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"Decode kernel, run {ds.run_id}")
        return
    series = {}
    for r in d["rows"]:
        series.setdefault((r["model"], r["batch"]), []).append((r["context"], r["contig_gbps"]))
    for (model, batch), pts in series.items():
        ax.plot(
            *zip(*sorted(pts), strict=True), marker="o", markersize=3, label=f"{model} B={batch}"
        )
    ax.axhline(d["copy_gbps"], color="gray", linestyle="--", linewidth=0.8, label="copy")
    ax.set_xscale("log", base=2)
    ax.set_title(f"Decode kernel on {d['device']}")
    ax.legend(frameon=False)


RENDERERS = {
    "gpt2_ratio_ablation": ratio,
    "gpt2_pruning": gpt2_pruning,
    "kvsplice_cache": kv_cache,
    "pruning_matrix": pruning,
    "bench_decode": decode,
}


def draw(name, files, out):
    manifest = data.load_manifest(data.pick(files, "manifest.json", name))
    where = f"paper/data/{name}/manifest.json"
    texgen.renderer_of(manifest.experiment, where)  # the accepted experiments, one list
    curves = texgen.RENDERERS[manifest.experiment].curves
    ds = data.load_dataset(name, files, curves=curves)
    size = (WIDE, 3.0) if texgen.RENDERERS[ds.experiment].wide else (WIDTH, 2.3)
    fig = plt.figure(figsize=size)
    RENDERERS[ds.experiment](ds, fig)
    for ax in fig.axes:
        ax.grid(alpha=0.3)
    save(fig, out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the data set: paper/data/NAME/")
    parser.add_argument("--out", required=True)
    parser.add_argument("files", nargs="*")
    args = parser.parse_intermixed_args(argv)
    plt.rcdefaults()
    plt.rcParams.update(STYLE)
    try:
        draw(args.name, args.files, Path(args.out))
    except DataError as err:
        print(f"figures: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
