"""Reads an imported run (paper/data/<set>/) and derives what the paper prints from it.

A data set is what paper/import_results.py copied out of an installed run:
manifest.json and summary.json, the run record's documents, and, for
trained experiments, val_curves.csv. All three are read through the record's
schema, experiments/record.py (Manifest, Summary, CURVE_COLUMNS), the classes
the run's installer and report wrote them with. The renderers (texgen.py,
figures.py) receive a set's files as paths on their command line; this
module checks them and computes every derived number once, per experiment,
so a table, its macros and its figure cannot disagree. Every problem (a
missing file, field, key or column, a value of the wrong kind, a record of
another schema) raises DataError naming the file and what was expected.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from experiments.record import (
    CURVE_COLUMNS,
    SCHEMA,
    Manifest,
    RecordError,
    Summary,
    get_field,
    missing_fields,
)


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


def load_json(path):
    """The JSON object in `path`, or a DataError naming the file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object at the top, got {type(obj).__name__}")
    return obj


def _optional_int(text):
    return None if text == "" else int(text)


# How val_curves.csv's columns (record.CURVE_COLUMNS) are read; an empty cell is None.
CURVE_TYPES = {
    "run": str,
    "step": str,
    "seed": _optional_int,
    "iter": int,
    "tokens": _optional_int,
    "val_loss": float,
}


def load_curves(path):
    """val_curves.csv's rows as dicts, every column of record.CURVE_COLUMNS converted."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in CURVE_COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{path}: missing column(s) {', '.join(missing)}; header is {','.join(header)}"
                )
            rows = [_curve_row(path, lineno, raw) for lineno, raw in enumerate(reader, start=2)]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    if not rows:
        raise DataError(f"{path}: no data rows")
    return rows


def _curve_row(path, lineno, raw):
    row = {}
    for col in CURVE_COLUMNS:
        convert = CURVE_TYPES[col]
        try:
            row[col] = convert(raw[col])
        except (TypeError, ValueError):
            raise DataError(
                f"{path}:{lineno}: column {col} = {raw[col]!r} is not a "
                f"{getattr(convert, '__name__', 'value').removeprefix('_optional_')}"
            ) from None
    return row


def _schema(obj, path, kind):
    if obj.get("schema") != SCHEMA:
        raise DataError(
            f"{path}: schema is {obj.get('schema')!r}; the paper reads {kind} records of schema "
            f"{SCHEMA} (experiments/record.py): rerun the experiment and import it again"
        )


def load_manifest(path):
    """A run's manifest.json as a record.Manifest, holding every record.REQUIRED_FIELDS."""
    obj = load_json(path)
    missing = missing_fields(obj)
    if missing:
        raise DataError(
            f"{path}: missing field(s) {', '.join(missing)} "
            "(experiments/record.py REQUIRED_FIELDS)"
        )
    _schema(obj, path, "manifest")
    try:
        return Manifest.from_dict(obj, str(path))
    except RecordError as err:
        raise DataError(str(err)) from None


def load_summary(path):
    """A run's summary.json as a record.Summary."""
    obj = load_json(path)
    _schema(obj, path, "summary")
    try:
        return Summary.from_dict(obj, str(path))
    except RecordError as err:
        raise DataError(str(err)) from None


@dataclass(frozen=True)
class DataSet:
    """One imported run: its directory name, manifest, summary and (maybe) val curves."""

    name: str
    manifest: Manifest
    summary: Summary
    curves: list | None
    summary_path: str

    @property
    def experiment(self) -> str:
        return self.manifest.experiment

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def dirty(self) -> bool:
        return bool(self.manifest.git.get("dirty"))

    def field(self, dotted, default=None):
        """The manifest's value at a dotted path ("machine.gpu"), or `default` where null."""
        value = get_field(self.manifest.to_dict(), dotted)
        return default if value is None else value

    def require(self, dotted):
        """The manifest's value at a dotted path; a DataError where it is absent or null."""
        value = self.field(dotted)
        if value is None:
            raise DataError(
                f"paper/data/{self.name}/manifest.json: {dotted} is missing or null; "
                f"the {self.experiment} renderer needs it"
            )
        return value


def load_dataset(name, files, curves=False):
    """The data set `name` from its files; `curves`: val_curves.csv is required."""
    manifest = load_manifest(pick(files, "manifest.json", name))
    summary_path = pick(files, "summary.json", name)
    summary = load_summary(summary_path)
    for key in ("experiment", "run_id"):
        if getattr(summary, key) != getattr(manifest, key):
            raise DataError(
                f"{summary_path}: {key} {getattr(summary, key)!r} but manifest.json says "
                f"{getattr(manifest, key)!r}; reimport the run with paper/import_results.py"
            )
    if summary.complete is not True:
        raise DataError(f"{summary_path}: complete is {summary.complete!r}; the run is unfinished")
    rows = load_curves(pick(files, "val_curves.csv", name)) if curves else None
    return DataSet(name, manifest, summary, rows, str(summary_path))


def need(row, keys, where):
    """`row` (a dict from summary.json) with `keys` present, else a DataError naming `where`."""
    missing = [k for k in keys if k not in row]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}")
    return row


def finite(values):
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


# ------------------------------------------------- verdicts (every compared table)

VERDICTS = ("better", "worse", "not resolved")


def comparisons(ds):
    """Per compared step (summary order): its reference, the difference of the metric
    (step minus reference) with its 95% interval, Holm's p, the verdict and the test;
    the tests used, as the caption names them. A step's verdict must be one of VERDICTS."""
    out = []
    for st in ds.summary.steps:
        if st["reference"] is None or st["difference"] is None:
            continue
        if st["vs_reference"] not in VERDICTS:
            raise DataError(
                f"{ds.summary_path}: step {st['step']} vs_reference {st['vs_reference']!r}; "
                f"accepted: {', '.join(VERDICTS)}"
            )
        out.append(
            {k: st[k] for k in ("step", "label", "reference", "difference", "low", "high")}
            | {"p_adjusted": st["p_adjusted"], "verdict": st["vs_reference"], "test": st["test"]}
        )
    return out


def tests_used(rows):
    """The tests of `rows` (comparisons), paired first: what a caption names."""
    return sorted({r["test"] for r in rows}, key=lambda t: (t != "paired t", t))


def bands_of(ds, names):
    """Per step, the val curve averaged over seeds with its min-max band."""
    curves = {}
    for row in ds.curves:
        curves.setdefault(row["step"], {}).setdefault(row["iter"], []).append(row["val_loss"])
    bands = {
        step: [(it, statistics.fmean(v), min(v), max(v)) for it, v in sorted(by_iter.items())]
        for step, by_iter in curves.items()
    }
    unknown = sorted(set(bands) - set(names))
    if unknown:
        raise DataError(f"val_curves.csv of {ds.name}: steps {unknown} are not in summary.json")
    return bands


# ------------------------------------------------------- gpt2_ratio_ablation


def ratio(ds):
    """Per step (summary order): label, seeds, mean and std of final val loss, the
    comparison with the reference step, params; the settings every step ran with; and
    per step the val curve averaged over seeds with its min-max band."""
    s = ds.summary
    steps = s.steps  # each a record.StepRow's fields (Summary.from_dict checked them)
    if not steps:
        raise DataError(f"{ds.summary_path}: no steps")
    names = [st["step"] for st in steps]
    if s.reference not in names:
        raise DataError(
            f"{ds.summary_path}: the reference step {s.reference!r} is not among the steps "
            f"({', '.join(names)}); the paper compares every step with it"
        )
    params = {}
    for r in s.runs:
        params.setdefault(r["step"], r.get("params"))
    for st in steps:
        if st["mean"] is None:
            raise DataError(f"{ds.summary_path}: step {st['step']} has no mean {s.metric}")
        if st["step"] != s.reference and st["vs_reference"] not in VERDICTS:
            raise DataError(
                f"{ds.summary_path}: step {st['step']} vs_reference {st['vs_reference']!r}; "
                f"accepted: {', '.join(VERDICTS)}"
            )
    compared = comparisons(ds)
    return {
        "steps": [dict(st, params=params.get(st["step"])) for st in steps],
        "reference": s.reference,
        "entropy": s.unigram_entropy,
        "settings": ratio_settings(ds),
        "seeds": max(st["runs"] for st in steps),
        "bands": bands_of(ds, names),
        "comparisons": compared,
        "tests": tests_used(compared),
    }


def ratio_settings(ds):
    """What every step trained with: the profile's name, size, block and batch
    (manifest config.profile) and the budget and dataset the runs had (manifest train)."""
    return {
        "profile": ds.require("config.profile.name"),
        "dims": ds.require("config.profile.dims"),
        "block_size": ds.require("config.profile.block_size"),
        "batch_size": ds.require("config.profile.batch_size"),
        "max_iters": ds.require("train.max_iters"),
        "dataset": ds.require("train.dataset"),
    }


# ------------------------------------------------------------ gpt2_pruning

LAYER_TYPES = ("attention", "mlp", "head")
GPT2_PRUNING_KEYS = ("val_ppl", "sparsity", "target_sparsity") + tuple(
    f"sparsity_{t}" for t in LAYER_TYPES
)


def _mean_of(rows, key):
    values = finite(r[key] for r in rows)
    return statistics.fmean(values) if values else None


def gpt2_pruning(ds):
    """Per step (summary order): seeds, mean and std of the final val loss, mean
    perplexity, sparsity over all prunable weights and per layer type, the target, and
    the comparison with its dense reference; the settings every step ran with, whether
    they were a GPU profile's, and the val curves with their bands."""
    s = ds.summary
    if not s.steps:
        raise DataError(f"{ds.summary_path}: no steps")
    runs = [
        need(r, GPT2_PRUNING_KEYS, f"{ds.summary_path}: runs[{i}]") for i, r in enumerate(s.runs)
    ]
    steps = []
    for st in s.steps:
        mine = [r for r in runs if r["step"] == st["step"] and r["status"] == "done"]
        if st["mean"] is None or not mine:
            raise DataError(f"{ds.summary_path}: step {st['step']} has no done run")
        steps.append(
            dict(
                st,
                ppl=_mean_of(mine, "val_ppl"),
                target=_mean_of(mine, "target_sparsity"),
                **{key: _mean_of(mine, key) for key in ("sparsity",) + GPT2_PRUNING_KEYS[3:]},
            )
        )
    compared = comparisons(ds)
    targets = sorted({st["target"] for st in steps if st["target"]})
    return {
        "steps": steps,
        "entropy": s.unigram_entropy,
        "settings": ratio_settings(ds),
        "gpu": ds.require("config.profile.device") != "cpu",
        "seeds": max(st["runs"] for st in steps),
        "targets": targets,
        "bands": bands_of(ds, [st["step"] for st in steps]),
        "comparisons": compared,
        "tests": tests_used(compared),
    }


# ------------------------------------------------------------ kvsplice_cache

KV_KEYS = ("tokens", "measured_bytes", "theory_bytes", "bytes_per_token", "rel_error")


def kv_cache(ds):
    """Per class (run order): bytes per token at the largest T, theory, worst relative
    error, reduction against the first class; the measured bytes at every T; the preset
    and dtype every class was measured at."""
    rows = [
        need(r, KV_KEYS, f"{ds.summary_path}: runs[{i}]") for i, r in enumerate(ds.summary.runs)
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
    preset, dtype = (declared(ds, key) for key in ("preset", "dtype"))
    return {"classes": out, "tokens": tokens, "preset": preset, "dtype": dtype}


def declared(ds, key):
    """The value every step's declaration (manifest config.steps) gives `key`."""
    where = f"paper/data/{ds.name}/manifest.json"
    steps = ds.require("config.steps")
    values = {json.dumps((st.get("declaration") or {}).get(key)) for st in steps}
    if values == {"null"} or not values:
        raise DataError(f"{where}: no step of config.steps declares {key}")
    if len(values) > 1:
        raise DataError(
            f"{where}: the steps of config.steps declare {key} as {', '.join(sorted(values))}; "
            "the paper prints one"
        )
    return json.loads(values.pop())


# ------------------------------------------------------------ pruning_matrix

PRUNE_RUN_KEYS = ("test_acc", "sparsity", "target_sparsity")


def pruning(ds):
    """Per cell (run order): label, mean and std test accuracy over seeds, mean sparsity
    reached and the target; and every done run's (sparsity, accuracy)."""
    s = ds.summary
    runs = [need(r, PRUNE_RUN_KEYS, f"{ds.summary_path}: runs[{i}]") for i, r in enumerate(s.runs)]
    cells = []
    for st in s.steps:
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
                **{k: st[k] for k in ("reference", "difference", "low", "high", "test")},
                "verdict": st["vs_reference"],
            }
        )
    if not cells:
        raise DataError(f"{ds.summary_path}: no cells")
    points = [
        (r["step"], r["sparsity"], r["test_acc"])
        for r in runs
        if r["status"] == "done" and r["sparsity"] is not None
    ]
    compared = comparisons(ds)
    return {
        "cells": cells,
        "points": points,
        "seeds": max(c["runs"] for c in cells),
        "tests": tests_used(compared),
    }


# -------------------------------------------------------------- bench_decode

DECODE_EXTRA = ("measured", "device", "copy_gbps")
DECODE_KEYS = ("model", "batch", "context", "contig_us", "contig_gbps", "contig_copy_frac")


def decode(ds):
    """`measured` false (a CPU smoke run): nothing to print but that. True: every row.
    Whether it measured, on which device, and the copy bandwidth are the summary's `extra`."""
    s = ds.summary
    extra = need(s.extra, DECODE_EXTRA, f"{ds.summary_path}: extra")
    if extra["measured"] is not True:
        return {"measured": False, "device": extra["device"]}
    rows = [need(r, DECODE_KEYS, f"{ds.summary_path}: runs[{i}]") for i, r in enumerate(s.runs)]
    if not rows:
        raise DataError(f"{ds.summary_path}: measured is true but there are no runs")
    if extra["copy_gbps"] is None:
        raise DataError(f"{ds.summary_path}: measured is true but extra.copy_gbps is null")
    return {
        "measured": True,
        "device": extra["device"],
        "copy_gbps": extra["copy_gbps"],
        "rows": rows,
    }
