"""The report of a trained experiment: summary.md, summary.json, val_curves.csv and plots.

experiments/report.py calls `write` with every run's result and metrics
(experiments/record.py) once all of an experiment's runs are built, so the
report is the same whichever machine trained which run. With --seeds N a
step has N runs, and the report says, step by step:

  * Steps: the metric's mean ± std over seeds, and each step against its
    reference (the experiment's declared `reference`: one step, step00 in the
    RATIO ablation, or a mapping step -> reference, each pruned step's dense
    step in the pruning experiments), seed by seed: the mean paired
    difference, its 95% interval, p after Holm's correction over every
    comparison of the table, and "better", "worse" or "not resolved"
    (experiments/verdicts.py; Welch's unpaired test, named as such, where the
    seeds do not pair);
  * Research checks (experiments/checks.py), failing checks first: whether
    each run learned, built what its declaration says, and whether its
    mechanisms did what they claim;
  * Telemetry: per step, the device's readings (experiments/telemetry.py:
    `gpu/*` on a GPU, `cpu/*` on the CPU), each the mean of the run's logged
    intervals, averaged over its done runs;
  * Runs: one row per run (step x seed).

summary.json holds the same tables for programs (experiments/record.py
Summary; the telemetry in `extra["telemetry"]`); val_curves.csv every
evaluation record of every done run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from experiments import checks, plots, verdicts
from experiments.record import COMPARISON_FIELDS, CURVE_COLUMNS, Summary
from experiments.results import atomic_write_json, atomic_write_text, write_csv

DEFAULT_COLUMNS = (
    ("run", "run"),
    ("label", "what"),
    ("model_class", "model"),
    ("params", "params"),
    ("kv_bytes_per_token", "KV B/token"),
    ("iters", "iters"),
    ("first_loss", "loss@1"),
    ("final_train_loss", "train loss"),
    ("val_loss", "val loss"),
    ("val_ppl", "val ppl"),
    ("sparsity", "sparsity"),
    ("tokens_per_s_median", "tok/s"),
    ("wall_s", "wall s"),
)

# The namespaces of the telemetry sampler's means in a train record.
TELEMETRY = ("gpu/", "cpu/")

# A summary.json runs row's keys -> the result values they are read from.
RUN_FIELDS = {
    "final_val_loss": "val_loss",
    "best_val_loss": "best_val_loss",
    "tokens_seen": "tokens",
    "wall_s": "wall_s",
    "params": "params",
    "kv_bytes_per_token": "kv_bytes_per_token",
    "sparsity": "sparsity",
    "target_sparsity": "target_sparsity",
    "test_acc": "test_acc",
    "model_class": "model_class",
    "val_ppl": "val_ppl",
    "sparsity_attention": "sparsity_attention",
    "sparsity_mlp": "sparsity_mlp",
    "sparsity_head": "sparsity_head",
}


@dataclass(frozen=True)
class Report:
    """What a trained experiment's summary ranks its steps by, and how it reads."""

    metric: str = "val_loss"
    label: str = "val loss"
    lower_is_better: bool = True
    columns: tuple = DEFAULT_COLUMNS
    intro: str = (
        "Losses are cross-entropy in nats; `loss@1` is the first iteration's, `train loss` "
        "the mean of the last 10, `val` the final evaluation."
    )
    extra_plots: Callable[[str, list], None] | None = None
    step_columns: tuple = ()  # (value, header): more means over seeds in the Steps table


def _accuracy_plot(plots_dir: str, rows: list) -> None:
    pts = {
        r["run"]: (r["sparsity"], r["test_acc"])
        for r in rows
        if r["status"] == "done" and r.get("sparsity") is not None
    }
    if pts:
        plots.scatter(
            pts,
            os.path.join(plots_dir, "accuracy_vs_sparsity.png"),
            "sparsity reached",
            "test accuracy",
            "pruning matrix: accuracy vs sparsity",
        )


LANGUAGE = Report()
SPARSITY_COLUMNS = (
    ("sparsity", "sparsity"),
    ("sparsity_attention", "attention"),
    ("sparsity_mlp", "MLP"),
    ("sparsity_head", "head"),
)
PRUNED_LANGUAGE = Report(
    columns=tuple(c for c in DEFAULT_COLUMNS if c[0] != "sparsity")
    + (("optimizer", "optimizer"), ("method", "method"))
    + SPARSITY_COLUMNS,
    intro=Report.intro + " `sparsity` is the fraction of prunable weights that are zero at the "
    "end, over all of them and per layer type (attention, MLP, the head tied to the token "
    "embedding).",
    step_columns=(("val_ppl", "val ppl"),) + SPARSITY_COLUMNS,
)
CLASSIFIER = Report(
    metric="test_acc",
    label="test accuracy",
    lower_is_better=False,
    columns=(
        ("run", "cell"),
        ("model_class", "model"),
        ("dataset", "data"),
        ("optimizer", "optimizer"),
        ("method", "method"),
        ("target_sparsity", "target"),
        ("sparsity", "sparsity"),
        ("target_reached", "reached"),
        ("test_acc", "test acc"),
        ("iters", "iters"),
        ("wall_s", "wall s"),
    ),
    intro="Each cell is a classifier: `test acc` is its accuracy on the whole test set at the "
    "end, `sparsity` the fraction of prunable weights that are zero, `reached` whether it is "
    "within half a point of the target.",
    extra_plots=_accuracy_plot,
)


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v).replace("|", "/")


def rows_of(results: list, metrics: dict) -> list[dict]:
    """One row per run: its result's values, status, checks, and curves from metrics.jsonl."""
    rows = []
    for res in results:
        recs = metrics.get(res.run, [])
        row = {
            **res.values,
            **{k: res.built.get(k) for k in ("dataset", "optimizer", "method") if k in res.built},
            "run": res.run,
            "step": res.step,
            "seed": res.seed,
            "label": res.built.get("label") or res.label,  # the size built, where known
            "status": res.status,
            "failure": (res.failure or {}).get("reason"),
            "checks": res.checks,
            "curve": [(r["iter"], r["loss"]) for r in recs if r.get("kind") == "train"],
            "telemetry": run_telemetry(recs),
            "val_records": sorted(
                (r for r in recs if r.get("kind") == "eval"), key=lambda r: r["iter"]
            ),
        }
        rows.append(row)
    return rows


def run_telemetry(records: list[dict]) -> dict[str, float]:
    """Each telemetry reading's mean over a run's logged intervals (its train records)."""
    seen: dict[str, list[float]] = {}
    for r in records:
        if r.get("kind") != "train":
            continue
        for key, value in r.items():
            if key.startswith(TELEMETRY) and isinstance(value, int | float):
                seen.setdefault(key, []).append(float(value))
    return {key: float(np.mean(values)) for key, values in sorted(seen.items())}


def step_telemetry(stats: list[dict]) -> dict[str, dict[str, float]]:
    """step -> each telemetry reading's mean over the step's done runs that logged it."""
    out = {}
    for st in stats:
        runs = [r["telemetry"] for r in st["runs"] if r["status"] == "done" and r["telemetry"]]
        keys = sorted({k for t in runs for k in t})
        if keys:
            out[st["step"]] = {k: float(np.mean([t[k] for t in runs if k in t])) for k in keys}
    return out


def telemetry_table(telemetry: dict[str, dict[str, float]]) -> list[str]:
    """summary.md's Telemetry section: one row per step, one column per reading."""
    if not telemetry:
        return []
    keys = sorted({k for t in telemetry.values() for k in t})
    lines = [
        "## Telemetry",
        "",
        "Readings of the device a step trained on (experiments/telemetry.py: NVML or AMD "
        "SMI on a GPU, this process's CPU and resident memory on the CPU; utilization in "
        "percent, `cpu/compute_util_avg` of one core), each the mean of a run's logged "
        "intervals, averaged over the step's done runs.",
        "",
        "| step | " + " | ".join(keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for step, t in telemetry.items():
        lines.append(f"| {step} | " + " | ".join(fmt(t.get(k)) for k in keys) + " |")
    return lines + [""]


def groups_of(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["step"], []).append(r)
    return out


def values_of(runs: list[dict], metric: str) -> list[float]:
    return [
        float(r[metric])
        for r in runs
        if r["status"] == "done" and r.get(metric) is not None and math.isfinite(r[metric])
    ]


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def run_checks(rows: list[dict], entropy: float | None) -> list[tuple[str, checks.Check]]:
    """(run or step, check) of every research check, failing checks first."""
    out: list[tuple[str, checks.Check]] = []
    for r in rows:
        if r["status"] == "failed":
            out.append((r["run"], checks.Check("trained", False, f"failed: {r['failure']}")))
            continue
        out += [(r["run"], checks.Check(**c)) for c in r.get("checks", [])]
        if entropy is not None:
            out.append((r["run"], checks.check_learned(r.get("val_loss"), entropy)))
    out += kvsplice_checks(groups_of(rows))
    return sorted(out, key=lambda sc: sc[1].ok)


def kvsplice_checks(groups: dict[str, list[dict]]) -> list[tuple[str, checks.Check]]:
    """KVSplice's quality over its MLA base, for every KVSplice step whose base also ran."""
    by_class = {}
    for name, runs in groups.items():
        done = [r for r in runs if r["status"] == "done"]
        if done:
            by_class.setdefault(done[0].get("model_class"), (name, done))
    out = []
    for name, runs in groups.items():
        cls = next((r.get("model_class") for r in runs if r["status"] == "done"), None)
        base_cls = checks.kvsplice_base(cls) if cls else None
        if base_cls is None or base_cls not in by_class:
            continue
        base_name, base_runs = by_class[base_cls]
        kv, base = values_of(runs, "val_loss"), values_of(base_runs, "val_loss")
        if kv and base:
            out.append((name, checks.check_kvsplice_cost(kv, base, base_name)))
    return out


def references_of(declared, steps) -> dict[str, str]:
    """step -> its reference, among `steps` (the steps of this table).

    `declared` is the experiment's `reference` (experiments/experiments.bzl): one
    step's name, which every other step is compared with; a mapping step ->
    reference; or None, for no comparisons. A pair whose reference is not in
    the table (a --steps subset) is left out.
    """
    if declared is None:
        return {}
    if isinstance(declared, str):
        pairs = verdicts.against(declared, steps)
    elif isinstance(declared, dict):
        pairs = dict(declared)
    else:
        raise ValueError(
            f"reference {declared!r} is invalid; accepted: a step's name, a mapping "
            "step -> reference, or None"
        )
    return {s: r for s, r in pairs.items() if s in steps and r in steps}


def seed_values(runs: list[dict], metric: str) -> dict[int, float]:
    """seed -> the metric, over a step's done runs that have a seed and a finite value."""
    return {
        r["seed"]: float(r[metric])
        for r in runs
        if r["status"] == "done"
        and isinstance(r["seed"], int)
        and r.get(metric) is not None
        and math.isfinite(r[metric])
    }


def step_stats(groups: dict, report: Report, declared) -> list[dict]:
    """Per step: its metric's values over done seeds and its comparison with its reference.

    The comparisons are experiments/verdicts.py's, over every step whose
    reference is in the table and both have a done run, with Holm's correction
    over all of them. A step that is some step's reference is "reference".
    """
    refs = references_of(declared, list(groups))
    by_seed = {name: seed_values(runs, report.metric) for name, runs in groups.items()}
    compared = {s: r for s, r in refs.items() if by_seed[s] and by_seed[r]}
    found = verdicts.table(
        {n: by_seed[n] for n in {*compared, *compared.values()}},
        compared,
        report.lower_is_better,
    )
    out = []
    for name, runs in groups.items():
        v = found.get(name)
        comparison = dict.fromkeys(COMPARISON_FIELDS)
        comparison["reference"] = refs.get(name)
        if v is not None:
            comparison.update({k: getattr(v, k) for k in COMPARISON_FIELDS})
        vs = v.verdict if v else ("reference" if name in refs.values() else None)
        out.append(
            {
                "step": name,
                "values": values_of(runs, report.metric),
                "vs_reference": vs,
                "runs": runs,
                **comparison,
            }
        )
    return out


def fmt_difference(st: dict) -> str:
    """The difference and its interval, as far as known: "-0.0123 [-0.0200, -0.0046]"."""
    if st["difference"] is None:
        return "-"
    if st["low"] is None:
        return f"{st['difference']:+.4f}"
    return f"{st['difference']:+.4f} [{st['low']:+.4f}, {st['high']:+.4f}]"


def fmt_p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def steps_table(stats: list[dict], report: Report, failed: dict) -> list[str]:
    compares = any(st["reference"] or st["vs_reference"] for st in stats)
    head = ["step", "what", "seeds done", f"{report.label} (mean ± std)"]
    head += [f"{h} (mean ± std)" for _, h in report.step_columns]
    if compares:
        head += ["vs", "difference [95% CI]", "p (Holm)", "test", "verdict"]
    head.append("checks")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for st in stats:
        runs = st["runs"]
        cells = [
            st["step"],
            fmt(runs[0]["label"]),
            f"{len(st['values'])}/{len(runs)}",
            mean_std(st["values"]),
        ]
        cells += [mean_std(values_of(runs, key)) for key, _ in report.step_columns]
        if compares:
            cells += [
                st["reference"] or "-",
                fmt_difference(st),
                fmt_p(st["p_adjusted"]),
                st["test"] or "-",
                st["vs_reference"] or "-",
            ]
        n_failed = sum(failed.get(r["run"], 0) for r in runs) + failed.get(st["step"], 0)
        cells.append(f"{n_failed} failed" if n_failed else "all pass")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def comparison_note(stats: list[dict], report: Report) -> list[str]:
    """What the Steps table's comparison columns mean, with the number of comparisons."""
    compared = [st for st in stats if st["test"]]
    if not compared:
        return []
    m = sum(st["p"] is not None for st in compared)
    lines = [
        "Each step is compared with its reference (`vs`) seed by seed: `difference` is the "
        f"mean over seeds of step minus reference in {report.label}, with its 95% interval "
        "(Student t on the paired differences: the paired t-test); `p (Holm)` is its "
        "two-sided p after Holm's correction over "
        + (
            f"the {m} comparisons of this table that have one"
            if m
            else "every comparison of the table that has one (here none has)"
        )
        + f". A step is better or worse when that p is below {verdicts.ALPHA}, "
        "otherwise not resolved; the interval is the comparison's own, so it can exclude "
        "zero for a step that stays not resolved. Where a step and its reference did not "
        "run the same seeds, or ran one, the test is Welch's unpaired t-test, named in the "
        "`test` column; with a single run on either side there is no interval and no p, "
        "and the verdict is not resolved.",
        "",
    ]
    unpaired: dict[str, list[str]] = {}
    for st in compared:
        if st["test"] != verdicts.PAIRED:
            unpaired.setdefault(st["reason"], []).append(st["step"])
    for reason, names in unpaired.items():
        lines.append(f"- {verdicts.WELCH} for {', '.join(names)}: {reason}")
    return lines + ([""] if unpaired else [])


def draw(plots_dir: str, experiment: str, groups: dict, report: Report) -> None:
    curves = {g: [r["curve"] for r in runs if r.get("curve")] for g, runs in groups.items()}
    curves = {g: c for g, c in curves.items() if c}
    if curves:
        plots.loss_curves(
            curves, os.path.join(plots_dir, "loss_curves.png"), f"{experiment}: training loss"
        )
    finals = {g: values_of(runs, report.metric) for g, runs in groups.items()}
    finals = {g: v for g, v in finals.items() if v}
    if finals:
        plots.bar_metric(
            {g: float(np.mean(v)) for g, v in finals.items()},
            os.path.join(plots_dir, f"{report.metric}.png"),
            f"final {report.label}",
            f"{experiment}: final {report.label} per step (mean, std over seeds)",
            errors={g: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for g, v in finals.items()},
        )
    quality = {}
    for g, runs in groups.items():
        done = [r for r in runs if r["status"] == "done" and r.get("val_ppl") is not None]
        if done and done[0].get("kv_bytes_per_token"):
            quality[g] = (
                done[0]["kv_bytes_per_token"],
                float(np.mean([r["val_ppl"] for r in done])),
            )
    if quality:
        plots.scatter(
            quality,
            os.path.join(plots_dir, "quality_vs_kv_bytes.png"),
            "KV-cache bytes per token (all layers)",
            "validation perplexity (mean over seeds)",
            f"{experiment}: quality vs KV-cache size",
        )


def summary_record(inputs, rows, stats, found, report: Report, fields=RUN_FIELDS) -> Summary:
    """summary.json: the steps, runs and checks of summary.md, as numbers."""
    steps = [
        {
            "step": st["step"],
            "label": st["runs"][0]["label"],
            "runs": len(st["runs"]),
            "runs_done": sum(r["status"] == "done" for r in st["runs"]),
            "mean": float(np.mean(st["values"])) if st["values"] else None,
            "std": float(np.std(st["values"], ddof=1)) if len(st["values"]) > 1 else None,
            "vs_reference": st["vs_reference"],
            **{k: st[k] for k in COMPARISON_FIELDS},
        }
        for st in stats
    ]
    runs = [
        {
            "run": r["run"],
            "step": r["step"],
            "seed": r["seed"],
            "status": r["status"],
            "failure": r["failure"],
            "label": r["label"],
            **{k: r.get(src) for k, src in fields.items()},
        }
        for r in rows
    ]
    return Summary(
        experiment=inputs.experiment,
        run_id=inputs.run_id,
        complete=bool(rows) and all(r["status"] == "done" for r in rows),
        metric=report.metric,
        metric_label=report.label,
        lower_is_better=report.lower_is_better,
        reference=inputs.reference,
        unigram_entropy=inputs.entropy,
        steps=steps,
        runs=runs,
        checks=[{"subject": s, **c.to_dict()} for s, c in found],
        extra={"telemetry": step_telemetry(stats)},
    )


def draw_differences(plots_dir: str, experiment: str, stats: list[dict], report: Report) -> None:
    """differences.png: each compared step's difference from its reference and its interval,
    sorted by effect (a forest plot)."""
    rows = [
        (f"{st['step']} vs {st['reference']}", st["difference"], st["low"], st["high"])
        for st in stats
        if st["difference"] is not None
    ]
    if rows:
        plots.forest(
            rows,
            os.path.join(plots_dir, "differences.png"),
            f"{report.label}: step minus reference (95% interval)",
            f"{experiment}: each step against its reference",
        )


def val_curve_rows(rows) -> list[dict]:
    """val_curves.csv: every evaluation record of every done run, in run then iter order."""
    return [
        {
            "run": r["run"],
            "step": r["step"],
            "seed": r["seed"],
            "iter": e["iter"],
            "tokens": e.get("tokens"),
            "val_loss": e.get("val_loss"),
        }
        for r in rows
        if r["status"] == "done"
        for e in r["val_records"]
    ]


def write(inputs, out: str, report: Report) -> list:
    """Writes summary.md, summary.json, val_curves.csv and plots/ into `out`; returns the
    failed checks."""
    rows = rows_of(inputs.results, inputs.metrics)
    groups = groups_of(rows)
    found = run_checks(rows, inputs.entropy)
    failed: dict[str, int] = {}
    for subject, c in found:
        if not c.ok:
            failed[subject] = failed.get(subject, 0) + 1
    stats = step_stats(groups, report, inputs.reference)
    lines = inputs.header(sum(r["status"] == "done" for r in rows), len(rows), report.intro)
    if inputs.entropy is not None:
        lines += [
            f"Unigram entropy of the validation tokens: {inputs.entropy:.3f} nats (measured on "
            "the validation split; a model that learned only token frequencies). A run learned "
            f"when its final val loss is at most {checks.LEARNED_FRACTION * inputs.entropy:.3f}, "
            f"{1 - checks.LEARNED_FRACTION:.0%} below it.",
            "",
        ]
    lines += failing_first(found)
    lines += ["## Steps", ""]
    lines += comparison_note(stats, report)
    lines += steps_table(stats, report, failed)
    lines += [""] + telemetry_table(step_telemetry(stats))
    lines += ["## Research checks", ""]
    lines.append(f"{sum(not c.ok for _, c in found)} of {len(found)} checks failed.")
    lines += [""] + checks.table(found, "run", fmt)
    lines += ["", "## Runs", ""]
    cols = report.columns
    lines.append("| " + " | ".join(h for _, h in cols) + " | status |")
    lines.append("|" + "---|" * (len(cols) + 1))
    for r in rows:
        status = r["status"] if r["status"] == "done" else f"FAILED: {r['failure']}"
        lines.append("| " + " | ".join(fmt(r.get(k)) for k, _ in cols) + f" | {status} |")
    plots_dir = os.path.join(out, "plots")
    os.makedirs(plots_dir, exist_ok=True)
    draw(plots_dir, inputs.experiment, groups, report)
    draw_differences(plots_dir, inputs.experiment, stats, report)
    if report.extra_plots:
        report.extra_plots(plots_dir, rows)
    pngs = sorted(p for p in os.listdir(plots_dir) if p.endswith(".png"))
    lines += ["", "Plots: " + (", ".join(f"[{p}](plots/{p})" for p in pngs) or "none"), ""]
    atomic_write_text(os.path.join(out, "summary.md"), "\n".join(lines) + "\n")
    record = summary_record(inputs, rows, stats, found, report)
    atomic_write_json(os.path.join(out, "summary.json"), record.to_dict())
    write_csv(os.path.join(out, "val_curves.csv"), CURVE_COLUMNS, val_curve_rows(rows))
    return [(s, c) for s, c in found if not c.ok]


def failing_first(found) -> list[str]:
    """The failing research checks, above everything else, when there are any."""
    bad = [(s, c) for s, c in found if not c.ok]
    if not bad:
        return []
    lines = [f"**{len(bad)} research checks failed:**", ""]
    lines += [f"- {s}: {c.name}: {c.detail}" for s, c in bad]
    return lines + [""]
