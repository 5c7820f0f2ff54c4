"""Telemetry in runs: the sampler's means in every logged record, and per step in the summary.

experiments/run_step.py starts a telemetry sampler (experiments/telemetry.py)
for every training run; its means over each log interval join that
interval's record of metrics.jsonl, the result names the sampler's backend,
and the report (experiments/summary.py) shows each reading's mean per step.
The gate's built experiment (//experiments:gate_ratio, the cpu profile) shows
the whole path with real CPU readings; a tiny experiment of planted records
shows how runs and seeds are averaged.
"""

import json

import pytest

from experiments import report, testing
from experiments.results import read_json, read_jsonl

CPU_KEYS = ["cpu/compute_util_avg", "cpu/memory_used_avg_gb", "cpu/memory_util_avg"]


def test_the_gates_runs_log_cpu_telemetry_and_their_summary_shows_it():
    gate = testing.gate_runfiles() / "experiments" / "gate_ratio" / "cpu-iters4"
    summary = read_json(str(gate / "report" / "summary.json"))
    shown = summary["extra"]["telemetry"]
    assert sorted(shown) == ["step00", "step08"]
    for run, step in (("step00-s1337", "step00"), ("step08-s1337", "step08")):
        records = read_jsonl(str(gate / run / "metrics.jsonl"))
        train = [r for r in records if r["kind"] == "train"]
        assert [r["iter"] for r in train] == [1, 2, 3, 4]
        for r in train:
            assert sorted(k for k in r if k.startswith(("cpu/", "gpu/"))) == CPU_KEYS, r
            assert r["cpu/memory_used_avg_gb"] > 0 and r["cpu/compute_util_avg"] >= 0
        result = json.loads((gate / run / "result.json").read_text())
        assert result["provenance"]["telemetry"] == "cpu"
        want = {k: sum(r[k] for r in train) / len(train) for k in CPU_KEYS}
        assert shown[step] == pytest.approx(want), step
    text = (gate / "report" / "summary.md").read_text()
    assert "## Telemetry" in text and "| step | " + " | ".join(CPU_KEYS) + " |" in text


def _records(losses, readings):
    recs = testing.metrics_of(losses, [2.0])
    train = [r for r in recs if r["kind"] == "train"]
    for r, reading in zip(train, readings, strict=True):
        r.update(reading)
    return recs


def test_the_summary_averages_each_reading_over_intervals_then_done_runs(tmp_path):
    gpu = [
        [{"gpu/compute_util_avg": 80.0, "gpu/memory_used_avg_gb": 10.0}] * 2,
        [
            {"gpu/compute_util_avg": 50.0, "gpu/memory_used_avg_gb": 12.0},
            {"gpu/compute_util_avg": 70.0, "gpu/memory_used_avg_gb": 14.0},
        ],
    ]
    results = [
        testing.run_result("a-s1", seed=1, values={"val_loss": 2.0}),
        testing.run_result("a-s2", seed=2, values={"val_loss": 2.1}),
        testing.run_result("a-s3", seed=3, status="failed", failure={"reason": "nan_loss"}),
        testing.run_result("b-s1", seed=1, values={"val_loss": 2.2}),
    ]
    metrics = {
        "a-s1": _records([3.0, 2.5], gpu[0]),
        "a-s2": _records([3.0, 2.4], gpu[1]),
        "a-s3": _records([3.0, 9.9], [{"gpu/compute_util_avg": 1.0}] * 2),  # failed: left out
        "b-s1": testing.metrics_of([3.0, 2.6], [2.2]),  # no sampler: no row
    }
    path = testing.write_experiment(tmp_path / "runs", results, metrics)
    out = tmp_path / "report"
    report.write(report.load(path), str(out))
    shown = read_json(str(out / "summary.json"))["extra"]["telemetry"]
    # a-s1: 80, 10; a-s2: 60, 13; the step: their means.
    assert shown == {"a": {"gpu/compute_util_avg": 70.0, "gpu/memory_used_avg_gb": 11.5}}
    text = (out / "summary.md").read_text()
    assert "| step | gpu/compute_util_avg | gpu/memory_used_avg_gb |\n|---|---:|---:|\n" in text
    assert text.index("## Steps") < text.index("## Telemetry") < text.index("## Research checks")
    section = text[text.index("## Telemetry") : text.index("## Research checks")]
    assert "| a | 70.000 | 11.500 |" in section and "| b |" not in section
