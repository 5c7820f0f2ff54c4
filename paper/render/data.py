"""Reads and checks the paper's data files, and derives the figures each section needs.

Every number the paper prints is computed here from a file under paper/data/,
and every problem with a file (missing, unparsable, a missing column or key,
a value of the wrong kind) raises DataError naming the file and what was
expected. The renderers (texgen.py, figures.py) receive the files as paths on
their command line and look them up by name with `pick`.
"""

import csv
import json
import statistics
from pathlib import Path


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


def mean_std(values):
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


# ---------------------------------------------------------------- kv_cache

KV_COLUMNS = {
    "variant": str,
    "dtype": str,
    "tokens": int,
    "batch": int,
    "measured_bytes": int,
    "bytes_per_token_per_layer": float,
    "theory_bytes_per_token_per_layer": float,
    "rel_error": float,
    "model_cache_bytes": int,
}
KV_VARIANTS = ("standard", "mla", "kvsplice")


def kv_cache(files):
    rows = load_csv(pick(files, "cache_bytes.csv", "kv_cache"), KV_COLUMNS)
    config = load_json(
        pick(files, "config.json", "kv_cache"),
        ("d_model", "n_head", "n_layer", "d_latent", "ratio"),
    )
    variants = {r["variant"] for r in rows}
    if set(KV_VARIANTS) - variants:
        raise DataError(
            f"paper/data/kv_cache/cache_bytes.csv: variants {sorted(variants)}; "
            f"the paper needs {', '.join(KV_VARIANTS)}"
        )
    return {"rows": rows, "config": config}


# ----------------------------------------------------------------- pruning

PRUNE_COLUMNS = {
    "method": str,
    "target_sparsity": float,
    "seed": int,
    "achieved_sparsity": float,
    "test_accuracy": float,
}


def pruning(files):
    rows = load_csv(pick(files, "runs.csv", "pruning"), PRUNE_COLUMNS)
    config = load_json(
        pick(files, "config.json", "pruning"),
        ("hidden", "epochs", "seeds", "train_samples", "test_samples"),
    )
    dense = [r["test_accuracy"] for r in rows if r["target_sparsity"] == 0]
    if not dense:
        raise DataError("paper/data/pruning/runs.csv: no dense run (target_sparsity 0)")
    groups = {}
    for r in rows:
        if r["target_sparsity"] > 0:
            groups.setdefault((r["method"], r["target_sparsity"]), []).append(r)
    summary = {}
    for (method, target), runs in sorted(groups.items()):
        acc, acc_std = mean_std(r["test_accuracy"] for r in runs)
        summary[(method, target)] = {
            "acc": acc,
            "acc_std": acc_std,
            "achieved": min(r["achieved_sparsity"] for r in runs),
            "n": len(runs),
        }
    return {"config": config, "dense": mean_std(dense), "summary": summary}


# --------------------------------------------------------------- ratio_cpu

RATIO_COLUMNS = {"config": str, "seed": int, "step": int, "val_loss": float}


def ratio_cpu(files):
    curves = load_csv(pick(files, "val_curves.csv", "ratio_cpu"), RATIO_COLUMNS)
    summary = load_json(pick(files, "summary.json", "ratio_cpu"), ("train", "configs"))
    configs = summary["configs"]
    if len(configs) < 2:
        raise DataError("paper/data/ratio_cpu/summary.json: needs two configurations to compare")
    for name, cfg in configs.items():
        for key in ("config", "params", "runs"):
            if key not in cfg:
                raise DataError(f"paper/data/ratio_cpu/summary.json: configs.{name} lacks {key}")
    return {"curves": curves, "summary": summary}


# -------------------------------------------------------- decode_bandwidth

DECODE_COLUMNS = {
    "batch": int,
    "context_tokens": int,
    "kv_bytes": int,
    "median_us": float,
    "achieved_gbps": float,
    "peak_gbps": float,
}


def decode_bandwidth(files):
    """Either measured results (results.csv + manifest.json) or a status saying why not."""
    names = {Path(f).name for f in files}
    if "results.csv" in names:
        rows = load_csv(pick(files, "results.csv", "decode_bandwidth"), DECODE_COLUMNS)
        manifest = load_json(pick(files, "manifest.json", "decode_bandwidth"), ("machine",))
        return {"available": True, "rows": rows, "manifest": manifest}
    status = load_json(pick(files, "status.json", "decode_bandwidth"), ("status", "reason"))
    if status["status"] != "not_run":
        raise DataError(
            f"paper/data/decode_bandwidth/status.json: status {status['status']!r} without a "
            "results.csv; accepted: 'not_run' (or import a result with results.csv)"
        )
    return {"available": False, "status": status}


# -------------------------------------------------------------- decode_cpu

DECODE_CPU_COLUMNS = {
    "variant": str,
    "batch": int,
    "context_tokens": int,
    "kv_bytes": int,
    "median_us": float,
    "achieved_gbps": float,
    "gemv_gbps": float,
}


def decode_cpu(files):
    rows = load_csv(pick(files, "decode_cpu.csv", "decode_cpu"), DECODE_CPU_COLUMNS)
    config = load_json(pick(files, "config.json", "decode_cpu"), ("threads", "reps", "dtype"))
    variants = {r["variant"] for r in rows}
    if variants != {"standard", "mla"}:
        raise DataError(
            f"paper/data/decode_cpu/decode_cpu.csv: variants {sorted(variants)}; "
            "the paper needs standard and mla"
        )
    return {"rows": rows, "config": config}


# --------------------------------------------------------------- manifests

MANIFEST_KEYS = ("name", "command", "git_commit", "machine", "versions", "created_utc")


def manifests(files):
    found = []
    for f in sorted(files, key=str):
        found.append(load_json(f, MANIFEST_KEYS))
    return found
