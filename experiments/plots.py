"""The run's figures, 300 DPI PNG: loss curves with seed bands, final losses with error bars,
quality vs KV-cache bytes, one line per series, and each step's difference from its
reference with its interval (a forest plot)."""

from __future__ import annotations

import os

os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "mpl"))

import matplotlib  # noqa: E402
import numpy as np  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiments.results import atomic_write  # noqa: E402

DPI = 300


def _save(fig, path: str) -> str:
    try:
        atomic_write(
            path,
            lambda f: fig.savefig(
                f, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None}
            ),
        )
    finally:
        plt.close(fig)
    return path


def _smooth(ys: np.ndarray, window: int) -> np.ndarray:
    """Moving average over the last `window` points (fewer at the start)."""
    if window <= 1:
        return ys
    c = np.cumsum(np.insert(ys, 0, 0.0))
    i = np.arange(1, len(ys) + 1)
    lo = np.maximum(i - window, 0)
    return (c[i] - c[lo]) / (i - lo)


def loss_curves(curves: dict[str, list[list[tuple[int, float]]]], path: str, title: str) -> str:
    """curves: label -> one [(iter, train loss)] per seed; the mean, and min-max band over seeds.

    Curves are smoothed over 2% of their length, so the steps' differences are
    not hidden by the noise of single batches.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, runs in curves.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        n = min(len(r) for r in runs)
        xs = np.array([x for x, _ in runs[0][:n]])
        window = max(1, n // 50)
        ys = np.stack([_smooth(np.array([y for _, y in r[:n]], dtype=float), window) for r in runs])
        (line,) = ax.plot(xs, ys.mean(0), linewidth=1.0, label=label)
        if len(runs) > 1:
            ax.fill_between(xs, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) <= 20:
        ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def bar_metric(
    values: dict[str, float],
    path: str,
    ylabel: str,
    title: str,
    errors: dict[str, float] | None = None,
) -> str:
    """One bar per label; `errors` (label -> std over seeds) draws error bars."""
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(values) + 2), 4))
    labels = list(values)
    yerr = [(errors or {}).get(k) or 0.0 for k in labels]
    ax.bar(
        range(len(labels)),
        [values[k] for k in labels],
        yerr=yerr if errors else None,
        capsize=3,
        color="tab:blue",
    )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    lo = min(v - e for v, e in zip(values.values(), yerr, strict=True)) if values else 0
    hi = max(v + e for v, e in zip(values.values(), yerr, strict=True)) if values else 1
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


def lines(
    series: dict[str, list[tuple[float, float]]],
    path: str,
    xlabel: str,
    ylabel: str,
    title: str,
    log_y: bool = False,
) -> str:
    """series: label -> [(x, y)], one line with markers each."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for label, pts in series.items():
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    return _save(fig, path)


def forest(rows: list[tuple[str, float, float | None, float | None]], path, xlabel, title) -> str:
    """rows: (label, difference, low, high); one row each, sorted by the difference, with its
    interval where it has one and a line at zero (a forest plot)."""
    rows = sorted(rows, key=lambda r: r[1])
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.28 * len(rows) + 1.2)))
    for y, (_, diff, low, high) in enumerate(rows):
        if low is not None and high is not None:
            ax.plot([low, high], [y, y], color="tab:blue", linewidth=1.2)
        ax.plot([diff], [y], marker="o", color="tab:blue", markersize=4)
    ax.axvline(0.0, color="gray", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in rows], fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
