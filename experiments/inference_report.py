"""The report of the inference measurement: speed and cache per GPT-2 class, against GPT2.

experiments/report.py's "inference" report. One row per class, context and
batch: prefill time, decode tokens/s, ms per token, the cache bytes the
prefill left (all of it, and the attention part), then the ratios to the
base (GPT2) timed at the same point in the same run (experiments/
inference_step.py). Below it the checks of every class, failing first, and
plots/decode_speedup.png. summary.json ranks the classes by their decode
speedup at the largest context and batch; `extra` says on which device, at
which size and precision.
"""

from __future__ import annotations

import os

from experiments import checks, plots
from experiments.checks import Check
from experiments.record import COMPARISON_FIELDS, Summary
from experiments.results import atomic_write_json, atomic_write_text

POINT_KEYS = (
    "context",
    "batch",
    "prefill_ms",
    "decode_tokens_per_s",
    "ms_per_token",
    "cache_bytes",
    "attention_cache_bytes",
)
RATIO_KEYS = ("speedup", "latency", "cache_reduction", "attention_cache_reduction")


def largest(rows: list[dict]) -> dict:
    """The row at the largest context, then batch."""
    return max(rows, key=lambda r: (r["context"], r["batch"]))


def mib(n: int) -> str:
    return f"{n / 2**20:,.2f}"


def rows_of(values: dict) -> list[dict]:
    """A class's points, each with its ratios to the base."""
    ratios = {(r["context"], r["batch"]): r for r in values["ratios"]}
    rows = []
    for p in values["points"]:
        ratio = ratios[(p["context"], p["batch"])]
        rows.append({**{k: p[k] for k in POINT_KEYS}, **{k: ratio[k] for k in RATIO_KEYS}})
    return rows


def setting(results: list[dict], key: str) -> str:
    """One setting of the runs (device, size, dtype): its value, or every value if they differ."""
    return ", ".join(sorted({str(r[key]) for r in results}))


def table(results: list[dict]) -> list[str]:
    lines = [
        "| class | context | batch | prefill ms | decode tok/s | ms/token | cache MiB "
        "| attention MiB | x speed | x latency | x cache |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for row in rows_of(r):
            lines.append(
                f"| {r['class']} | {row['context']:,} | {row['batch']} | "
                f"{row['prefill_ms']:,.1f} | {row['decode_tokens_per_s']:,.0f} | "
                f"{row['ms_per_token']:.2f} | {mib(row['cache_bytes'])} | "
                f"{mib(row['attention_cache_bytes'])} | {row['speedup']:.2f} | "
                f"{row['latency']:.2f} | {row['cache_reduction']:.2f} |"
            )
    return lines


def intro(results: list[dict], base: str) -> list[str]:
    """What the table's columns are, and where the runs ran."""
    where = {key: setting(results, key) if results else "-" for key in ("size", "dtype", "device")}
    lines = [
        f"Each class was timed beside {base} in its own run, point by point (prefill of "
        "random prompts, then greedy decode through the class's own KV cache); "
        f"`x speed` is its decode tokens/s over {base}'s at the same point, `x latency` "
        f"its ms per token over {base}'s, `x cache` {base}'s cache bytes over its own. "
        f"Size {where['size']}, {where['dtype']}, on {where['device']}.",
        "",
    ]
    if where["device"] == "cpu":
        lines += [
            "On the CPU the models are tiny and the machine is shared: these speeds show "
            "that every class generates through its cache, not what the papers claim "
            "(that is the GPU profile's run).",
            "",
        ]
    return lines


def write(inputs, out: str) -> list:
    done = [res for res in inputs.results if res.done]
    results = [res.values for res in done]
    found = sorted(
        ((res.step, Check(**c)) for res in done for c in res.checks), key=lambda sc: sc[1].ok
    )
    base = results[0]["base"] if results else "GPT2"
    lines = inputs.header(len(done), len(inputs.results), "") + intro(results, base)
    lines += table(results)
    n_failed = sum(not c.ok for _, c in found)
    lines += [
        "",
        "## Research checks",
        "",
        f"{n_failed} of {len(found)} checks failed.",
        "",
    ]
    lines += checks.table(found, "class")
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    if results:
        batch = max(p["batch"] for p in results[0]["points"])
        series = {
            r["class"]: [(x["context"], x["speedup"]) for x in r["ratios"] if x["batch"] == batch]
            for r in results
        }
        plots.lines(
            series,
            os.path.join(out, "plots", "decode_speedup.png"),
            "context (tokens)",
            f"decode tokens/s over {base}'s",
            f"decode speed against {base}, batch {batch}",
        )
        lines += ["", "Plot: [decode_speedup.png](plots/decode_speedup.png)"]
    atomic_write_text(os.path.join(out, "summary.md"), "\n".join(lines) + "\n")
    atomic_write_json(os.path.join(out, "summary.json"), summary(inputs, done, found).to_dict())
    return [(s, c) for s, c in found if not c.ok]


def summary(inputs, done, found) -> Summary:
    """summary.json: each class's speedup at the largest point, and one row per point."""
    return Summary(
        experiment=inputs.experiment,
        run_id=inputs.run_id,
        complete=bool(inputs.results) and len(done) == len(inputs.results),
        metric="speedup",
        metric_label="decode tokens/s over the base's, at the largest context and batch",
        lower_is_better=False,
        reference=inputs.reference,
        unigram_entropy=None,
        steps=[
            {
                "step": res.step,
                "label": res.label,
                "runs": 1,
                "runs_done": 1,
                "mean": largest(res.values["ratios"])["speedup"],
                "std": None,
                "vs_reference": "reference" if res.step == inputs.reference else None,
                # A ratio to the base at each point, not a test over seeds: no interval.
                **dict.fromkeys(COMPARISON_FIELDS),
            }
            for res in done
        ],
        runs=[
            {
                "run": res.run,
                "step": res.step,
                "seed": None,
                "status": "done",
                "failure": None,
                "label": res.label,
                "params": res.values["params"],
                **row,
            }
            for res in done
            for row in rows_of(res.values)
        ],
        checks=[{"subject": s, **c.to_dict()} for s, c in found],
        extra={
            key: setting([res.values for res in done], key) if done else None
            for key in ("device", "size", "dtype", "base")
        },
    )
