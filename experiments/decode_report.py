"""The report of the decode benchmark: its table, plot, rows as CSV, and summary.json.

experiments/report.py's "decode" report, from the one run's values
(experiments/decode_step.py): results.json (the benchmark's result),
results.csv, table.txt, plots/decode_bandwidth.png and summary.json, whose
`extra` says whether anything was `measured` (false for the CPU smoke run),
on which device, and the copy bandwidth of the same run.
"""

from __future__ import annotations

import math
import os

from experiments.record import Summary
from experiments.results import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    write_csv,
)


def _nan(v):
    return math.nan if v is None else v


def measured_values(values: dict) -> dict:
    """The benchmark's result as it computed it: result.json wrote each NaN (what the smoke
    run does not measure: copy bandwidth, SDPA, copy fractions) as null."""
    result = {k: v for k, v in values.items() if k != "measured"}
    result["copy_gbps"] = _nan(result.get("copy_gbps"))
    result["rows"] = [{k: _nan(v) for k, v in row.items()} for row in result["rows"]]
    return result


# What a row measures: results.csv's first columns (result.json keeps keys sorted).
KEY_COLUMNS = ("model", "batch", "context")


def columns(rows: list[dict]) -> list[str]:
    return list(KEY_COLUMNS) + [k for k in rows[0] if k not in KEY_COLUMNS]


def write(inputs, out: str) -> list:
    from kernels import bench_decode as bench

    (res,) = inputs.results
    result = measured_values(res.values)
    measured = bool(res.values.get("measured"))
    atomic_write_json(os.path.join(out, "results.json"), result)
    write_csv(os.path.join(out, "results.csv"), columns(result["rows"]), result["rows"])
    table = bench.table(result)
    atomic_write_text(os.path.join(out, "table.txt"), table + "\n")
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    atomic_write_bytes(os.path.join(out, "plots", "decode_bandwidth.png"), bench.plot(result))
    lines = inputs.header(1, 1, "" if measured else "CPU SMOKE RUN: nothing was measured.")
    lines += [
        "```",
        table,
        "```",
        "",
        "Plot: [decode_bandwidth.png](plots/decode_bandwidth.png)",
        "",
    ]
    atomic_write_text(os.path.join(out, "summary.md"), "\n".join(lines) + "\n")
    summary = Summary(
        experiment=inputs.experiment,
        run_id=inputs.run_id,
        complete=res.done,
        metric="contig_gbps",
        metric_label="knlp decode GB/s (contiguous cache)",
        lower_is_better=False,
        reference=None,
        unigram_entropy=None,
        steps=[],
        runs=[
            {
                "run": res.run,
                "step": res.step,
                "seed": None,
                "status": res.status,
                "failure": None,
                "label": res.label,
                **row,
            }
            for row in result["rows"]
        ],
        checks=[],
        extra={"measured": measured, "device": result["device"], "copy_gbps": result["copy_gbps"]},
    )
    atomic_write_json(os.path.join(out, "summary.json"), summary.to_dict())
    return []
