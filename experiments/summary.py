"""A run's report: summary.md, summary.json, val_curves.csv and the plots, rebuilt
from disk after every step.

`write_summary` reads every run's DONE or FAILED and metrics.jsonl from the run
directory, so the report is the same whether the steps ran now or in an
earlier invocation; experiments/runner.py calls it after every step.
summary.json holds the same tables for programs (paper/import_results.py):
per step the metric's mean and std and the comparison with the reference, per
run the final and best val loss, tokens, wall time, parameters, KV bytes per
token and sparsity, and the research checks; `complete` is true once every
run is DONE. val_curves.csv holds every evaluation record of every DONE run's
metrics.jsonl (a run still pending may yet drop records when it resumes). With
--seeds N a step has N runs (`StepSpec.group` names the step), and the report
says, step by step:

  * Steps: the metric's mean ± std over seeds, and whether the step is
    "better" or "worse" than the first step (the reference, step 0 in the
    RATIO ablation) beyond twice the pooled std, else "not resolved";
  * Research checks (experiments/checks.py), failing checks first: whether
    each step learned, built what steps.bzl declares, and whether its
    mechanisms did what they claim;
  * Runs: one row per run (step x seed).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from experiments import checks, plots
from experiments.results import (
    SCHEMA,
    RunDir,
    atomic_write_json,
    atomic_write_text,
    read_json,
    read_jsonl,
    write_csv,
)

DEFAULT_COLUMNS = (
    ("step", "run"),
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
    ("step_wall_s", "wall s"),
)


@dataclass(frozen=True)
class Report:
    """What a run's summary ranks its steps by, and how it reads."""

    metric: str = "val_loss"
    label: str = "val loss"
    lower_is_better: bool = True
    compare: bool = True  # mark each step against the first one
    columns: tuple = DEFAULT_COLUMNS
    intro: str = (
        "Losses are cross-entropy in nats; `loss@1` is the first iteration's, `train loss` "
        "the mean of the last 10, `val` the final evaluation."
    )
    extra_plots: Callable[[RunDir, dict], None] | None = None


LANGUAGE = Report()


def _fmt(v) -> str:
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


def _group(spec) -> str:
    return getattr(spec, "group", None) or spec.name


def _rows(run: RunDir, steps) -> list[dict]:
    """One row per run (step x seed) from disk: its DONE result, or why it has none."""
    rows = []
    for s in steps:
        base = {"step": s.name, "group": _group(s), "label": s.label, "seed": s.seed}
        res = run.done_result(s.name)
        fail = run.failure(s.name)
        if res:
            recs = read_jsonl(os.path.join(run.root, "steps", s.name, "metrics.jsonl"))
            curve = [(r["iter"], r["loss"]) for r in recs if r.get("kind") == "train"]
            evals = [r for r in recs if r.get("kind") == "eval"]
            rows.append(dict(res, **base, status="done", curve=curve, val_records=evals))
        elif fail:
            rows.append(dict(base, status=f"FAILED: {fail.get('reason')}"))
        else:
            rows.append(dict(base, status="pending"))
    return rows


def _groups(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["group"], []).append(r)
    return out


def _values(runs: list[dict], metric: str) -> list[float]:
    return [
        float(r[metric])
        for r in runs
        if r["status"] == "done" and r.get(metric) is not None and math.isfinite(r[metric])
    ]


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def _entropy(rows: list[dict]) -> float | None:
    return next((r["unigram_entropy"] for r in rows if r.get("unigram_entropy")), None)


def run_checks(rows: list[dict]) -> list[tuple[str, checks.Check]]:
    """(run or step, check) of every research check, failing checks first."""
    out: list[tuple[str, checks.Check]] = []
    entropy = _entropy(rows)
    for r in rows:
        if r["status"].startswith("FAILED"):
            out.append((r["step"], checks.Check("trained", False, r["status"])))
            continue
        if r["status"] != "done":
            continue
        out += [(r["step"], checks.Check(**c)) for c in r.get("checks", [])]
        if entropy is not None:
            out.append((r["step"], checks.check_learned(r.get("val_loss"), entropy)))
    out += _kvsplice_checks(_groups(rows))
    return sorted(out, key=lambda sc: sc[1].ok)


def _kvsplice_checks(groups: dict[str, list[dict]]) -> list[tuple[str, checks.Check]]:
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
        kv, base = _values(runs, "val_loss"), _values(base_runs, "val_loss")
        if kv and base:
            out.append((name, checks.check_kvsplice_cost(kv, base, base_name)))
    return out


def _step_stats(groups: dict[str, list[dict]], report: Report) -> list[dict]:
    """Per step: its metric's values over done seeds and how it compares with the first."""
    names = list(groups)
    ref_values = _values(groups[names[0]], report.metric) if names else []
    out = []
    for name in names:
        values = _values(groups[name], report.metric)
        vs = None
        if report.compare:
            if name == names[0]:
                vs = "reference"
            elif values and ref_values:
                vs = checks.compare(values, ref_values, report.lower_is_better)
        out.append({"step": name, "values": values, "vs_reference": vs})
    return out


def _steps_table(groups: dict[str, list[dict]], report: Report, failed: dict) -> list[str]:
    stats = _step_stats(groups, report)
    ref = stats[0]["step"] if stats else None
    head = ["step", "what", "seeds done", f"{report.label} (mean ± std)"]
    if report.compare:
        head.append(f"vs {ref}")
    head.append("checks")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for st in stats:
        name, values, runs = st["step"], st["values"], groups[st["step"]]
        cells = [name, _fmt(runs[0]["label"]), f"{len(values)}/{len(runs)}", _mean_std(values)]
        if report.compare:
            cells.append(st["vs_reference"] or "-")
        n_failed = sum(failed.get(r["step"], 0) for r in runs)
        checked = any(r["status"] != "pending" for r in runs)
        cells.append(f"{n_failed} failed" if n_failed else ("all pass" if checked else "-"))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _header(run: RunDir, experiment: str, config: dict, rows, report: Report) -> list[str]:
    m = read_json(run.path("manifest.json"), {})
    git = m.get("git", {})
    hw = m.get("machine", {})
    lines = [
        f"# {experiment} / {os.path.basename(run.root)}",
        "",
        f"Profile `{config.get('profile', {}).get('name', '?')}`, commit "
        f"`{git.get('commit')}`{' (dirty)' if git.get('dirty') else ''}, torch "
        f"{m.get('versions', {}).get('torch')}, device {hw.get('device')}"
        f" ({hw.get('gpu') or hw.get('cpu')}). "
        f"{sum(r['status'] == 'done' for r in rows)} of {len(rows)} runs done. {report.intro}",
        "",
    ]
    entropy = _entropy(rows)
    if entropy is not None:
        lines += [
            f"Unigram entropy of the validation tokens: {entropy:.3f} nats (measured on the "
            "validation split; a model that learned only token frequencies). A step learned "
            f"when its final val loss is at most {checks.LEARNED_FRACTION * entropy:.3f}, "
            f"{1 - checks.LEARNED_FRACTION:.0%} below it.",
            "",
        ]
    return lines


def _draw(run: RunDir, experiment: str, groups: dict, report: Report) -> None:
    curves = {g: [r["curve"] for r in runs if r.get("curve")] for g, runs in groups.items()}
    curves = {g: c for g, c in curves.items() if c}
    if curves:
        plots.loss_curves(
            curves, run.path("plots", "loss_curves.png"), f"{experiment}: training loss"
        )
    finals = {g: _values(runs, report.metric) for g, runs in groups.items()}
    finals = {g: v for g, v in finals.items() if v}
    if finals:
        plots.bar_metric(
            {g: float(np.mean(v)) for g, v in finals.items()},
            run.path("plots", f"{report.metric}.png"),
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
            run.path("plots", "quality_vs_kv_bytes.png"),
            "KV-cache bytes per token (all layers)",
            "validation perplexity (mean over seeds)",
            f"{experiment}: quality vs KV-cache size",
        )


# A summary.json runs row's keys -> the DONE result's keys (null where DONE has none).
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
}

VAL_CURVE_COLUMNS = ("run", "step", "seed", "iter", "tokens", "val_loss")


def _status(row: dict) -> str:
    return "failed" if row["status"].startswith("FAILED") else row["status"]


def summary_record(
    run: RunDir, experiment: str, rows, found, report: Report, fields: dict = RUN_FIELDS
) -> dict:
    """summary.json: the steps, runs and checks of summary.md, as numbers.

    `rows` are one per run (as _rows reads them), `found` the (subject, Check)
    pairs, `fields` a runs row's keys -> the row's keys they are read from.
    """
    groups = _groups(rows)
    steps = []
    for st in _step_stats(groups, report):
        values, runs = st["values"], groups[st["step"]]
        steps.append(
            {
                "step": st["step"],
                "label": runs[0]["label"],
                "runs": len(runs),
                "runs_done": sum(r["status"] == "done" for r in runs),
                "mean": float(np.mean(values)) if values else None,
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                "vs_reference": st["vs_reference"],
            }
        )
    runs = [
        {
            "run": r["step"],
            "step": r["group"],
            "seed": r.get("seed"),
            "status": _status(r),
            "failure": r["status"][len("FAILED: ") :] if _status(r) == "failed" else None,
            "label": r["label"],
            **{k: r.get(src) for k, src in fields.items()},
        }
        for r in rows
    ]
    return {
        "schema": SCHEMA,
        "experiment": experiment,
        "run_id": os.path.basename(run.root),
        "complete": bool(rows) and all(r["status"] == "done" for r in rows),
        "metric": report.metric,
        "metric_label": report.label,
        "lower_is_better": report.lower_is_better,
        "unigram_entropy": _entropy(rows),
        "steps": steps,
        "runs": runs,
        "checks": [{"subject": s, **c.to_dict()} for s, c in found],
    }


def val_curve_rows(rows) -> list[dict]:
    """val_curves.csv: every evaluation record of every DONE run, in run then iter order."""
    return [
        {
            "run": r["step"],
            "step": r["group"],
            "seed": r.get("seed"),
            "iter": e["iter"],
            "tokens": e.get("tokens"),
            "val_loss": e.get("val_loss"),
        }
        for r in rows
        for e in sorted(r.get("val_records", []), key=lambda e: e["iter"])
    ]


def write_summary(run: RunDir, experiment: str, steps, config: dict, report: Report = LANGUAGE):
    """Rewrites summary.md and the plots from the run directory; returns the failed checks."""
    rows = _rows(run, steps)
    groups = _groups(rows)
    found = run_checks(rows)
    failed: dict[str, int] = {}
    for subject, c in found:
        if not c.ok:
            failed[subject] = failed.get(subject, 0) + 1
    n_failed = sum(not c.ok for _, c in found)
    lines = _header(run, experiment, config, rows, report)
    lines += ["## Steps", ""]
    if report.compare:
        lines += [
            f"A step is marked better or worse than `{rows[0]['group'] if rows else '-'}` only "
            f"when its mean {report.label} differs by more than twice the pooled standard "
            "deviation of the two steps' seeds; otherwise, and always with one seed, "
            "not resolved.",
            "",
        ]
    lines += _steps_table(groups, report, failed)
    lines += ["", "## Research checks", ""]
    lines.append(f"{n_failed} of {len(found)} checks failed." if found else "No checks ran yet.")
    if found:
        lines += ["", "| result | run | check | detail |", "|---|---|---|---|"]
        lines += [
            f"| {'pass' if c.ok else '**FAIL**'} | {s} | {c.name} | {_fmt(c.detail)} |"
            for s, c in found
        ]
    lines += ["", "## Runs", ""]
    cols = report.columns
    lines.append("| " + " | ".join(h for _, h in cols) + " | status |")
    lines.append("|" + "---|" * (len(cols) + 1))
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k)) for k, _ in cols) + f" | {r['status']} |")
    _draw(run, experiment, groups, report)
    if report.extra_plots:
        report.extra_plots(run, {r["step"]: r for r in rows})
    pngs = sorted(p for p in os.listdir(run.path("plots")) if p.endswith(".png"))
    lines += ["", "Plots: " + (", ".join(f"[{p}](plots/{p})" for p in pngs) or "none yet"), ""]
    atomic_write_text(run.path("summary.md"), "\n".join(lines) + "\n")
    atomic_write_json(
        run.path("summary.json"), summary_record(run, experiment, rows, found, report)
    )
    if any(r.get("val_records") for r in rows):
        write_csv(run.path("val_curves.csv"), VAL_CURVE_COLUMNS, val_curve_rows(rows))
    return [(s, c) for s, c in found if not c.ok]
