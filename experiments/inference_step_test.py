"""The "inference" kind and its report at tiny size on the CPU: one class beside GPT2 per run.

experiments/inference_step.py measures a class and the base in one process
and keeps the class's points, the base's and the ratios; its check compares
the attention cache with experiments/checks.py's theory. The report
(experiments/inference_report.py) tabulates every class's points beside its
ratios. Timings are only checked to be positive (the machine is shared).
"""

import pytest
import torch

from experiments import inference, inference_report, inference_step, report, testing
from experiments.checks import Check
from experiments.results import read_json
from models.gpt2 import zoo

POINTS = {"contexts": [16, 32], "batches": [1, 2], "decode_tokens": 2}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def measured(tmp_path, cls, **changes):
    decl = testing.run_spec("gpt2_inference", cls)["declaration"]
    spec = testing.write_run_spec(
        tmp_path / f"{cls}.json", "gpt2_inference", cls, declaration={**decl, **POINTS, **changes}
    )
    return inference_step.measure(spec, testing.profile_of(spec), "cpu", None, lambda m: None)


def test_a_class_is_measured_beside_gpt2_in_its_own_run(tmp_path):
    values, found = measured(tmp_path, "GPT2_MLA_KV")
    assert found == [
        {
            "name": "cache vs theory",
            "ok": True,
            "detail": "GPT2_MLA_KV: 128 B per token and sequence at all 4 points, as designed",
        }
    ]  # tiny: 2 layers x 4 bytes x 16 values (the 32-value latent at kv_ratio 0.5)
    assert [p["class"] for p in values["points"]] == ["GPT2_MLA_KV"] * 4
    assert [p["class"] for p in values["base_points"]] == ["GPT2"] * 4
    points = [(p["context"], p["batch"]) for p in values["points"]]
    assert points == [(16, 1), (16, 2), (32, 1), (32, 2)]
    assert [(r["context"], r["batch"]) for r in values["ratios"]] == points
    for r, p, b in zip(values["ratios"], values["points"], values["base_points"], strict=True):
        assert r["speedup"] == p["decode_tokens_per_s"] / b["decode_tokens_per_s"] > 0
        assert r["cache_reduction"] == b["cache_bytes"] / p["cache_bytes"]
    assert values["device"] == "cpu" and values["size"] == "tiny" and values["params"] > 0


def test_gpt2_is_measured_once_and_is_its_own_base(tmp_path):
    values, found = measured(tmp_path, "GPT2")
    assert len(values["points"]) == 4 and values["base_points"] == values["points"]
    assert {r["speedup"] for r in values["ratios"]} == {1.0} and found[0]["ok"]


def test_a_cache_off_the_theory_fails_its_check_naming_the_point(tmp_path):
    values, _ = measured(tmp_path, "GPT2_MLA")
    cfg = inference.class_config(zoo.get_class("GPT2_MLA"), "tiny", 34)
    points = [dict(p) for p in values["points"]]
    points[3]["attention_cache_bytes"] += 4  # one value too many at context 32, batch 2
    check = inference_step.cache_check("GPT2_MLA", cfg, points, 4)
    assert check == Check(
        "cache vs theory",
        False,
        "GPT2_MLA: context 32, batch 2: 16,388 B, theory 16,384 B",
    )


def test_a_bad_precision_is_refused_with_the_accepted_ones(tmp_path):
    with pytest.raises(ValueError, match="dtype 'float8': accepted: float32, bfloat16, float16"):
        measured(tmp_path, "GPT2", dtype="float8")


def test_the_report_tabulates_every_class_beside_its_ratios(tmp_path):
    results = []
    for cls in ("GPT2", "GPT2_MLA"):
        values, found = measured(tmp_path, cls)
        results.append(testing.run_result(cls, seed=None, values=values, checks=found))
    path = testing.write_experiment(
        tmp_path / "records",
        results,
        experiment="gpt2_inference",
        report="inference",
        reference="GPT2",
    )
    out = tmp_path / "report"
    failed = report.write(report.load(path), str(out))
    assert failed == []
    s = read_json(str(out / "summary.json"))
    assert s["complete"] and s["metric"] == "speedup" and s["lower_is_better"] is False
    mla = results[1].values
    top = inference_report.largest(mla["ratios"])
    assert (top["context"], top["batch"]) == (32, 2)
    assert [(st["step"], st["mean"], st["vs_reference"]) for st in s["steps"]] == [
        ("GPT2", 1.0, "reference"),
        ("GPT2_MLA", top["speedup"], None),
    ]
    assert s["extra"] == {"device": "cpu", "size": "tiny", "dtype": "float32", "base": "GPT2"}
    rows = [r for r in s["runs"] if r["run"] == "GPT2_MLA"]
    assert [(r["context"], r["batch"]) for r in rows] == [(16, 1), (16, 2), (32, 1), (32, 2)]
    assert [r["cache_reduction"] for r in rows] == [r["cache_reduction"] for r in mla["ratios"]]
    text = (out / "summary.md").read_text()
    p = mla["points"][3]
    assert (
        f"| GPT2_MLA | 32 | 2 | {p['prefill_ms']:,.1f} | {p['decode_tokens_per_s']:,.0f} |" in text
    )
    assert "0 of 2 checks failed." in text and "On the CPU the models are tiny" in text
    assert (out / "plots" / "decode_speedup.png").read_bytes()[:4] == b"\x89PNG"
