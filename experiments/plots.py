"""The run's figures, 300 DPI PNG: loss curves, validation perplexity, quality vs KV-cache bytes."""

from __future__ import annotations

import os

os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "mpl"))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 300


def _save(fig, path: str) -> str:
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    os.replace(tmp, path)
    return path


def loss_curves(curves: dict[str, list[tuple[int, float]]], path: str, title: str) -> str:
    """curves: label -> [(iter, train loss)]."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pts in curves.items():
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, linewidth=1.0, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) <= 20:
        ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def bar_metric(values: dict[str, float], path: str, ylabel: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(values) + 2), 4))
    labels = list(values)
    ax.bar(range(len(labels)), [values[k] for k in labels], color="tab:blue")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    lo = min(values.values()) if values else 0
    hi = max(values.values()) if values else 1
    if values and lo > 0:
        ax.set_ylim(lo * 0.95, hi * 1.02)
    return _save(fig, path)


def scatter(
    points: dict[str, tuple[float, float]], path: str, xlabel: str, ylabel: str, title: str
) -> str:
    """points: label -> (x, y)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, (x, y) in points.items():
        ax.scatter([x], [y], s=18)
        ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)
