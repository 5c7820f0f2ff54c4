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
WIDE = 7.0  # both columns: the RATIO curves of up to nineteen steps (texgen's figure*)
METADATA = {"CreationDate": None, "Creator": "knlp paper/render/figures.py"}


def save(fig, out):
    fig.tight_layout(pad=0.3)
    fig.savefig(out, format="pdf", metadata=METADATA)
    plt.close(fig)


def ratio(ds, ax):
    d = data.ratio(ds)
    for st in d["steps"]:
        pts = d["bands"].get(st["step"], [])
        if not pts:
            continue
        it, mean, lo, hi = zip(*pts, strict=True)
        line = ax.plot(it, mean, marker="." if len(it) < 4 else None, label=st["step"])[0]
        if lo != hi:
            ax.fill_between(it, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(f"RATIO ablation, run {ds.run_id}")
    ax.legend(frameon=False, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def kv_cache(ds, ax):
    d = data.kv_cache(ds)
    for c, marker in zip(d["classes"], "osD^v<>", strict=False):
        tokens, nbytes = zip(*c["points"], strict=True)
        ax.plot(tokens, [b / 2**20 for b in nbytes], marker=marker, label=c["class"])
    ax.set_xlabel("tokens in the cache (T)")
    ax.set_ylabel("KV cache (MiB)")
    ax.set_title(f"Measured cache size, run {ds.run_id}")
    ax.legend(frameon=False)


def pruning(ds, ax):
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


def decode(ds, ax):
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
    size = (WIDE, 2.6) if texgen.RENDERERS[ds.experiment].wide else (WIDTH, 2.3)
    fig, ax = plt.subplots(figsize=size)
    ax.grid(alpha=0.3)
    RENDERERS[ds.experiment](ds, ax)
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
