"""The gate's inference smoke test, read from its built experiment: every class ran, its cache
is the research checks' theory.

`//experiments:gate_inference` builds `gpt2_inference` on the cpu profile:
one action per GPT-2 class (experiments.bzl GPT2_CLASSES), each prefilling
and decoding the class at tiny size beside GPT2 (experiments/inference_step.py).
The theory here is experiments/checks.py's `kv_values_per_token_layer`, from
the class name and the config the run recorded; the measured bytes are the
cache tensors the class's own prefill returned. Timings are only checked to
be positive: the machine is shared.
"""

import json

import pytest

from experiments import checks, testing
from experiments.record import RunResult, Summary
from models.gpt2.config import GPT2Config

GATE = testing.gate_runfiles("gate_inference") / "experiments" / "gate_inference" / "cpu"
CLASSES = [s["name"] for s in testing.steps("gpt2_inference")]


def result(cls: str) -> RunResult:
    path = GATE / cls / "result.json"
    return RunResult.from_dict(json.loads(path.read_text()), str(path))


def test_every_gpt2_class_ran_at_every_declared_point():
    declared = {s["name"]: s["declaration"] for s in testing.steps("gpt2_inference")}
    assert len(CLASSES) == 9 and CLASSES[0] == "GPT2"
    for cls in CLASSES:
        res, d = result(cls), declared[cls]
        assert res.status == "done" and res.values["class"] == cls, cls
        want = [(t, b) for t in d["contexts"] for b in d["batches"]]
        for key in ("points", "base_points", "ratios"):
            got = [(p["context"], p["batch"]) for p in res.values[key]]
            assert got == want, (cls, key)
        assert {p["class"] for p in res.values["base_points"]} == {"GPT2"}
        for p in res.values["points"]:
            assert p["decode_tokens_per_s"] > 0 and p["prefill_ms"] > 0, (cls, p)
            assert p["decode_tokens"] == d["decode_tokens"] and p["size"] == "tiny"


def test_each_classs_measurement_reads_its_own_model_file_and_gpt2s_only():
    for cls in CLASSES:
        lines = (GATE / cls / "inputs.txt").read_text().splitlines()
        read = {line.split("\t")[0] for line in lines if line}
        models = {p for p in read if p.startswith("models/gpt2/gpt2")}
        assert models == {"models/gpt2/gpt2.py", f"models/gpt2/{cls.lower()}.py"}, cls
        for never in ("experiments/inference_report.py", "experiments/kv_cache_step.py"):
            assert never not in read, (cls, never)
        assert "experiments/inference.py" in read and "spec.json" in read


def test_every_classs_attention_cache_equals_the_research_checks_theory():
    for cls in CLASSES:
        res = result(cls)
        cfg = GPT2Config(**res.values["config"])
        per_token = checks.kv_values_per_token_layer(cls, cfg) * cfg.n_layer * 4  # float32
        for p in res.values["points"]:
            want = per_token * p["batch"] * p["context"]
            assert p["attention_cache_bytes"] == want, (cls, p["context"], p["batch"])
            assert p["cache_bytes"] >= p["attention_cache_bytes"]
        assert [(c["name"], c["ok"]) for c in res.checks] == [("cache vs theory", True)], cls


def test_the_ratios_are_against_gpt2_timed_in_the_same_run():
    for cls in CLASSES:
        v = result(cls).values
        base = {(p["context"], p["batch"]): p for p in v["base_points"]}
        own = {(p["context"], p["batch"]): p for p in v["points"]}
        for r in v["ratios"]:
            p, b = own[(r["context"], r["batch"])], base[(r["context"], r["batch"])]
            assert r["speedup"] == pytest.approx(b["ms_per_token"] / p["ms_per_token"])
            assert r["cache_reduction"] == b["cache_bytes"] / p["cache_bytes"]
    mla = result("GPT2_MLA").values["ratios"]  # tiny: a 32-value latent against 2 x 64
    assert {r["attention_cache_reduction"] for r in mla} == {128 / 32}


def test_the_report_lists_every_class_and_its_check():
    report = GATE / "report"
    s = Summary.from_dict(json.loads((report / "summary.json").read_text()))
    assert s.complete and [st["step"] for st in s.steps] == CLASSES
    assert s.reference == "GPT2" and s.extra["device"] == "cpu" and s.extra["size"] == "tiny"
    assert sorted({c["subject"] for c in s.checks}) == sorted(CLASSES)
    assert all(c["ok"] for c in s.checks)
    d = testing.steps("gpt2_inference")[0]["declaration"]
    text = (report / "summary.md").read_text()
    row = f"| {max(d['contexts']):,} | {max(d['batches'])} |"
    assert all(f"| {cls} {row}" in text for cls in CLASSES)
    assert (report / "plots" / "decode_speedup.png").read_bytes()[:4] == b"\x89PNG"
