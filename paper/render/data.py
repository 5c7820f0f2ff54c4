"""Reads an imported run (paper/data/<set>/) and derives what the paper prints from it.

A data set is what paper/import_results.py copied out of a finished run:
manifest.json (the run record of experiments/results.py), summary.json and,
for trainer-based runs, val_curves.csv. The renderers (texgen.py,
figures.py) receive a set's files as paths on their command line; this
module checks them and computes every derived number once, per experiment,
so a table, its macros and its figure cannot disagree. Every problem (a
missing file, field, key or column, a value of the wrong kind) raises
DataError naming the file and what was expected.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from experiments.results import get_field, missing_fields


class DataError(Exception):
    """A data file is missing or does not have the expected shape."""


def pick(files, name, dataset):
    """The path among `files` whose file name is `name`, or a DataError naming both."""
    for f in files:
        if Path(f).name == name:
            return Path(f)
    have = ", ".join(sorted(Path(f).name for f in files)) or "none"
    raise DataError(
        f"paper/data/{dataset}/{name} is missing: {dataset} needs it (files given: {have})"
    )


def load_json(path, required=()):
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object at the top, got {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
    return obj


def load_csv(path, columns):
    """Rows of a CSV as dicts, with `columns` ({name: type}) present and converted."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(
                    f"{path}: missing column(s) {', '.join(missing)}; header is {','.join(header)}"
                )
            rows = []
            for lineno, raw in enumerate(reader, start=2):
                row = dict(raw)
                for col, kind in columns.items():
                    try:
                        row[col] = kind(raw[col])
                    except (TypeError, ValueError):
                        raise DataError(
                            f"{path}:{lineno}: column {col} = {raw[col]!r} is not a {kind.__name__}"
                        ) from None
                rows.append(row)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    if not rows:
        raise DataError(f"{path}: no data rows")
    return rows


def load_manifest(path):
    """A run's manifest.json, holding every field of experiments/results.py REQUIRED_FIELDS."""
    manifest = load_json(path)
    missing = missing_fields(manifest)
    if missing:
        raise DataError(
            f"{path}: missing field(s) {', '.join(missing)} "
            "(experiments/results.py REQUIRED_FIELDS)"
        )
    return manifest


# summary.json's top-level keys (the run record's schema, experiments/summary.py).
SUMMARY_KEYS = ("schema", "experiment", "run_id", "complete", "metric", "steps", "runs")
CURVE_COLUMNS = {"run": str, "step": str, "iter": int, "tokens": int, "val_loss": float}


@dataclass(frozen=True)
class DataSet:
    """One imported run: its directory name, manifest, summary and (maybe) val curves."""

    name: str
    manifest: dict
    summary: dict
    curves: list | None
    summary_path: str

    @property
    def experiment(self) -> str:
        return self.manifest["experiment"]

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @property
    def dirty(self) -> bool:
        return bool(get_field(self.manifest, "git.dirty"))

    def field(self, dotted, default=None):
        value = get_field(self.manifest, dotted)
        return default if value is None else value


def load_dataset(name, files, curves=False):
    """The data set `name` from its files; `curves`: val_curves.csv is required."""
    manifest = load_manifest(pick(files, "manifest.json", name))
    summary_path = pick(files, "summary.json", name)
    summary = load_json(summary_path, SUMMARY_KEYS)
    for key in ("experiment", "run_id"):
        if summary[key] != manifest[key]:
            raise DataError(
                f"{summary_path}: {key} {summary[key]!r} but manifest.json says "
                f"{manifest[key]!r}; reimport the run with paper/import_results.py"
            )
    if summary["complete"] is not True:
        raise DataError(
            f"{summary_path}: complete is {summary['complete']!r}; the run is unfinished"
        )
    rows = load_csv(pick(files, "val_curves.csv", name), CURVE_COLUMNS) if curves else None
    return DataSet(name, manifest, summary, rows, str(summary_path))


def need(row, keys, where):
    """`row` (a dict from summary.json) with `keys` present, else a DataError naming `where`."""
    missing = [k for k in keys if k not in row]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}")
    return row


def finite(values):
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


# ------------------------------------------------------- gpt2_ratio_ablation

STEP_KEYS = ("step", "label", "runs", "runs_done", "mean", "std", "vs_reference")
VERDICTS = ("better", "worse", "not resolved")


def ratio(ds):
    """Per step (run order): label, seeds, mean and std of final val loss, verdict, params;
    and per step the val curve averaged over seeds with its min-max band."""
    s = ds.summary
    steps = [
        need(st, STEP_KEYS, f"{ds.summary_path}: steps[{i}]") for i, st in enumerate(s["steps"])
    ]
    if not steps:
        raise DataError(f"{ds.summary_path}: no steps")
    params = {}
    for r in s["runs"]:
        params.setdefault(r.get("step"), r.get("params"))
    for st in steps:
        if st["mean"] is None:
            raise DataError(f"{ds.summary_path}: step {st['step']} has no mean {s['metric']}")
        if st is not steps[0] and st["vs_reference"] not in VERDICTS:
            raise DataError(
                f"{ds.summary_path}: step {st['step']} vs_reference {st['vs_reference']!r}; "
                f"accepted: {', '.join(VERDICTS)}"
            )
    curves = {}
    for row in ds.curves:
        curves.setdefault(row["step"], {}).setdefault(row["iter"], []).append(row["val_loss"])
    bands = {
        step: [(it, statistics.fmean(v), min(v), max(v)) for it, v in sorted(by_iter.items())]
        for step, by_iter in curves.items()
    }
    unknown = sorted(set(bands) - {st["step"] for st in steps})
    if unknown:
        raise DataError(f"val_curves.csv of {ds.name}: steps {unknown} are not in summary.json")
    profile = ds.field("config.profile", {})
    return {
        "steps": [dict(st, params=params.get(st["step"])) for st in steps],
        "entropy": s.get("unigram_entropy"),
        "profile": profile,
        "seeds": max(st["runs"] for st in steps),
        "bands": bands,
    }


# ------------------------------------------------------------ kvsplice_cache

KV_KEYS = ("run", "tokens", "measured_bytes", "theory_bytes", "bytes_per_token", "rel_error")


def kv_cache(ds):
    """Per class (run order): bytes per token at the largest T, theory, worst relative
    error, reduction against the first class; the measured bytes at every T."""
    rows = [
        need(r, KV_KEYS, f"{ds.summary_path}: runs[{i}]") for i, r in enumerate(ds.summary["runs"])
    ]
    if not rows:
        raise DataError(f"{ds.summary_path}: no runs")
    classes = list(dict.fromkeys(r["run"] for r in rows))
    tokens = sorted({r["tokens"] for r in rows})
    out = []
    for cls in classes:
        mine = sorted((r for r in rows if r["run"] == cls), key=lambda r: r["tokens"])
        per_token = [r["bytes_per_token"] for r in mine]
        top = mine[-1]
        out.append(
            {
                "class": cls,
                "bytes_per_token": top["bytes_per_token"],
                "theory_per_token": top["theory_bytes"] / top["tokens"],
                "max_rel_error": max(abs(r["rel_error"]) for r in mine),
                "spread": (max(per_token) - min(per_token)) / statistics.fmean(per_token),
                "points": [(r["tokens"], r["measured_bytes"]) for r in mine],
                "params": top.get("params"),
            }
        )
    ref = out[0]["bytes_per_token"]
    for c in out:
        c["reduction"] = ref / c["bytes_per_token"]
    return {"classes": out, "tokens": tokens, "config": ds.field("config", {})}


# ------------------------------------------------------------ pruning_matrix

PRUNE_RUN_KEYS = ("step", "status", "test_acc", "sparsity", "target_sparsity")


def pruning(ds):
    """Per cell (run order): label, mean and std test accuracy over seeds, mean sparsity
    reached and the target; and every done run's (sparsity, accuracy)."""
    s = ds.summary
    runs = [
        need(r, PRUNE_RUN_KEYS, f"{ds.summary_path}: runs[{i}]") for i, r in enumerate(s["runs"])
    ]
    cells = []
    for i, st in enumerate(s["steps"]):
        need(st, STEP_KEYS, f"{ds.summary_path}: steps[{i}]")
        mine = [r for r in runs if r["step"] == st["step"] and r["status"] == "done"]
        if st["mean"] is None or not mine:
            raise DataError(f"{ds.summary_path}: cell {st['step']} has no done run")
        reached = finite(r["sparsity"] for r in mine)
        targets = finite(r["target_sparsity"] for r in mine)
        cells.append(
            {
                "step": st["step"],
                "label": st["label"],
                "acc": st["mean"],
                "std": st["std"],
                "runs": len(mine),
                "sparsity": statistics.fmean(reached) if reached else None,
                "target": targets[0] if targets else None,
            }
        )
    if not cells:
        raise DataError(f"{ds.summary_path}: no cells")
    points = [
        (r["step"], r["sparsity"], r["test_acc"])
        for r in runs
        if r["status"] == "done" and r["sparsity"] is not None
    ]
    return {"cells": cells, "points": points, "seeds": max(c["runs"] for c in cells)}


# -------------------------------------------------------------- bench_decode

DECODE_KEYS = ("model", "batch", "context", "contig_us", "contig_gbps", "contig_copy_frac")


def decode(ds):
    """`measured` false (a CPU smoke run): nothing to print but that. True: every row."""
    s = need(ds.summary, ("measured", "device", "copy_gbps"), ds.summary_path)
    if s["measured"] is not True:
        return {"measured": False, "device": s["device"]}
    rows = [need(r, DECODE_KEYS, f"{ds.summary_path}: runs[{i}]") for i, r in enumerate(s["runs"])]
    if not rows:
        raise DataError(f"{ds.summary_path}: measured is true but there are no runs")
    return {"measured": True, "device": s["device"], "copy_gbps": s["copy_gbps"], "rows": rows}
