"""The run report: gates, the saturation fit and every stage's status, as JSON and markdown.

Built from the run directory alone (the run stage's metrics.jsonl and each
stage's status.json), so it can be rebuilt from an archived run.
"""

import json
from pathlib import Path

from experiments.results import read_jsonl
from tools.reproduce import cell, gates, saturation
from tools.reproduce.pipeline import STAGES


def stage_statuses(run_dir):
    out = {}
    for stage in STAGES:
        path = Path(run_dir) / "stages" / stage / "status.json"
        out[stage] = json.loads(path.read_text()) if path.exists() else {"status": "not_run"}
        out[stage]["done"] = (Path(run_dir) / "stages" / stage / "DONE").exists()
    return out


def metric_records(records):
    """{metric: record} of scalar metrics (the last record of each wins)."""
    return {r["metric"]: r for r in records if "metric" in r and "value" in r and "batch" not in r}


def arms_problem(gate, record):
    """Why a quality gate's record cannot be reported, or None."""
    if not gate.arms:
        return None
    arms = record.get("arms")
    if not (isinstance(arms, dict) and {"reference", "test"} <= set(arms)):
        return f"the {gate.metric} record does not name the two arms it compared"
    try:
        cell.check_arms(arms["reference"], arms["test"])
    except cell.CellError as err:
        return f"refused: {err}"
    return None


def saturation_section(records):
    points = [r for r in records if r.get("metric") == "decode_tokens_per_s"]
    if not points:
        return None, None
    try:
        fits = saturation.fit_sweep(points)
    except saturation.FitError as err:
        return {"error": str(err), "points": len(points)}, None
    section = {
        "model": "S(B) = S_max * B / (K_m + B)",
        "points": len(points),
        "fits": {str(t): f.as_dict() for t, f in fits.items()},
    }
    return section, min(f.r2 for f in fits.values())


def build(run_dir, stage_set, stage_set_spec):
    statuses = stage_statuses(run_dir)
    run_done = statuses["run"]["done"]
    records = read_jsonl(Path(run_dir) / "stages" / "run" / "metrics.jsonl") if run_done else []
    by_metric = metric_records(records)
    sat, min_r2 = saturation_section(records)
    if min_r2 is not None:
        by_metric["saturation_min_r2"] = {"value": min_r2}
    measured = set(stage_set_spec["measurements"])
    results = []
    for gate in gates.GATES:
        row = {
            "gate": gate.name,
            "meaning": gate.meaning,
            "metric": gate.metric,
            "condition": f"{gate.op} {gate.threshold:g}",
        }
        if gate.measurement not in measured:
            row.update(status="not_applicable", reason=f"stage set {stage_set} does not measure it")
        elif not run_done:
            reason = statuses["run"].get("reason") or {"code": statuses["run"]["status"]}
            row.update(status="not_evaluated", reason=f"run stage {reason['code']}")
        elif gate.metric not in by_metric:
            row.update(status="fail", reason=f"the run recorded no {gate.metric}")
        elif arms_problem(gate, by_metric[gate.metric]):
            row.update(status="fail", reason=arms_problem(gate, by_metric[gate.metric]))
        else:
            value = by_metric[gate.metric]["value"]
            row.update(value=value, status="pass" if gates.evaluate(gate, value) else "fail")
        results.append(row)
    applicable = [r for r in results if r["status"] != "not_applicable"]
    if any(r["status"] == "fail" for r in applicable):
        verdict = "fail"
    elif applicable and all(r["status"] == "pass" for r in applicable):
        verdict = "pass"
    else:
        verdict = "incomplete"
    return {
        "stage_set": stage_set,
        "description": stage_set_spec["description"],
        "run_id": Path(run_dir).name,
        "verdict": verdict,
        "cell": stage_set_spec["cell"],
        "gates": results,
        "saturation": sat,
        "stages": statuses,
    }


def _fmt(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown(report):
    lines = [
        f"# Decode reproduction {report['run_id']}: {report['verdict']}",
        "",
        f"This is the report of one run of stage set `{report['stage_set']}` "
        f"({report['description']}). It is generated from the run directory by "
        "tools/reproduce/report.py; the figures are in report.json.",
        "",
        f"Decode cell: {cell.label(report['cell'])}.",
        "",
        "## Gates",
        "",
        "| gate | condition | value | status | note |",
        "|---|---|---|---|---|",
    ]
    for g in report["gates"]:
        value = _fmt(g["value"]) if "value" in g else ""
        lines.append(
            f"| {g['gate']} | {g['metric']} {g['condition']} | {value} | {g['status']} "
            f"| {g.get('reason', '')} |"
        )
    sat = report["saturation"]
    lines += ["", "## Saturation fit", ""]
    if sat is None:
        lines.append("No saturation sweep in this run.")
    elif "error" in sat:
        lines.append(f"The sweep could not be fitted: {sat['error']}")
    else:
        lines += [f"Model {sat['model']}, {sat['points']} points.", ""]
        lines += ["| context T | S_max (tok/s) | K_m | R^2 | points |", "|---|---|---|---|---|"]
        for t, f in sat["fits"].items():
            lines.append(
                f"| {t} | {f['s_max']:.1f} | {f['k_m']:.2f} | {f['r2']:.4f} | {f['points']} |"
            )
    lines += ["", "## Stages", "", "| stage | status | reason |", "|---|---|---|"]
    for stage, s in report["stages"].items():
        reason = s.get("reason") or {}
        note = f"{reason.get('code', '')}: {reason.get('detail', '')}" if reason else ""
        lines.append(f"| {stage} | {s['status']} | {note} |")
    return "\n".join(lines) + "\n"
