"""The report of the KV-cache measurement: the cache table, its plot and summary.json.

experiments/report.py's "kv_cache" report. One row per class and token count:
measured and theory bytes, error, bytes per token, and how many times smaller
than the first class's the cache is; below it the checks of every class
(experiments/kv_cache_step.py), failing first. Nothing trains here, so
whether KVSplice's scale and shift move is checked where it trains
(`gpt2_variants`).
"""

from __future__ import annotations

import os

from experiments import checks, plots
from experiments.checks import Check
from experiments.record import COMPARISON_FIELDS, Summary
from experiments.results import atomic_write_json, atomic_write_text

ROW_KEYS = ("tokens", "measured_bytes", "theory_bytes", "bytes_per_token", "rel_error")


def write(inputs, out: str) -> list:
    results = [r.values for r in inputs.results]
    found = sorted(
        ((res.step, Check(**c)) for res in inputs.results for c in res.checks),
        key=lambda sc: sc[1].ok,
    )
    first = results[0]["class"]
    base = {row["tokens"]: row["measured_bytes"] for row in results[0]["rows"]}
    lines = inputs.header(len(results), len(results), "")
    lines += [
        "Measured = bytes of the tensors in the KV cache after prefilling T tokens; theory "
        f"from the design. `{first} / class` is how many times smaller than {first}'s the "
        "cache is at the same T.",
        "",
        "| class | T | cache tensors (layer 0) | measured B | theory B | error | B/token | "
        f"{first} / class |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for row in r["rows"]:
            shapes = ", ".join(f"{k} {tuple(v)}" for k, v in row["shapes"].items())
            lines.append(
                f"| {r['class']} | {row['tokens']} | {shapes} | {row['measured_bytes']:,} | "
                f"{row['theory_bytes']:,} | {row['rel_error']:+.2%} | "
                f"{row['bytes_per_token']:,.0f} | "
                f"{base[row['tokens']] / row['measured_bytes']:.1f}x |"
            )
    n_failed = sum(not c.ok for _, c in found)
    lines += [
        "",
        "## Research checks",
        "",
        f"{n_failed} of {len(found)} checks failed. This run trains nothing, so whether "
        "KVSplice's scale and shift move is checked where it trains (`gpt2_variants`).",
        "",
    ]
    lines += checks.table(found, "class")
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    plots.lines(
        {
            r["class"]: [(row["tokens"], row["measured_bytes"] / 2**20) for row in r["rows"]]
            for r in results
        },
        os.path.join(out, "plots", "cache_bytes.png"),
        "tokens in cache",
        "KV-cache MiB (all layers, batch 1)",
        "KV-cache memory by class",
        log_y=True,
    )
    lines += ["", "Plot: [cache_bytes.png](plots/cache_bytes.png)", ""]
    atomic_write_text(os.path.join(out, "summary.md"), "\n".join(lines) + "\n")
    summary = Summary(
        experiment=inputs.experiment,
        run_id=inputs.run_id,
        complete=all(r.done for r in inputs.results),
        metric="bytes_per_token",
        metric_label="KV-cache bytes per token",
        lower_is_better=True,
        reference=None,
        unigram_entropy=None,
        steps=[
            {
                "step": r["class"],
                "label": r["class"],
                "runs": 1,
                "runs_done": 1,
                "mean": r["rows"][-1]["bytes_per_token"],
                "std": None,
                "vs_reference": None,
                **dict.fromkeys(COMPARISON_FIELDS),
            }
            for r in results
        ],
        runs=[
            {
                "run": r["class"],
                "step": r["class"],
                "seed": None,
                "status": "done",
                "failure": None,
                "label": r["class"],
                "params": r["params"],
                **{k: row[k] for k in ROW_KEYS},
            }
            for r in results
            for row in r["rows"]
        ],
        checks=[{"subject": s, **c.to_dict()} for s, c in found],
    )
    atomic_write_json(os.path.join(out, "summary.json"), summary.to_dict())
    return [(s, c) for s, c in found if not c.ok]
