"""The decode cell: the K16/V8 default, the recipe's LLM arguments, refused cells and arms.

The records below are test fixtures written here, never measurements.
"""

import json

import pytest

from tools.reproduce import cell, reproduce
from tools.reproduce.measure import common, gsm8k
from tools.reproduce.pipeline import Pipeline

STAGE_SETS = reproduce.load_stage_sets()
K16_V8 = STAGE_SETS["decode"]["cell"]
CPU_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}


def test_every_stage_set_defaults_to_the_k16_v8_cell_with_flashinfer():
    for name, spec in STAGE_SETS.items():
        assert cell.cache_dtypes(spec["cell"]) == ("auto", "fp8_e4m3"), name
        assert spec["cell"]["attention_backend"] == "FLASHINFER", name
        assert spec["cell"]["dtype"] == "bfloat16", name


def test_the_llm_is_built_as_the_groups_recipe():
    assert cell.llm_kwargs(K16_V8) == {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "dtype": "bfloat16",
        "kv_cache_dtype": ("auto", "fp8_e4m3"),
        "attention_config": {"backend": "FLASHINFER"},
    }
    symmetric = dict(K16_V8, v_cache_dtype="auto")
    assert cell.llm_kwargs(symmetric)["kv_cache_dtype"] == "auto"


@pytest.mark.parametrize(
    "change,message",
    [
        ({"v_cache_dtype": "int4"}, "v_cache_dtype='int4' is not accepted; accepted: auto, fp8"),
        ({"dtype": "float32"}, "dtype='float32' is not accepted; accepted: bfloat16, float16"),
        ({"attention_backend": "FLASH_ATTN"}, "an asymmetric cache needs one of FLASHINFER"),
        ({"model": ""}, "model='': accepted: a Hugging Face model name"),
        ({"kv_cache_dtype": "auto"}, "unknown ['kv_cache_dtype']"),
    ],
)
def test_a_bad_cell_is_refused_naming_the_value(change, message):
    with pytest.raises(cell.CellError) as err:
        cell.check(dict(K16_V8, **change))
    assert message in str(err.value)


def test_the_quality_gate_refuses_arms_with_the_same_cache_dtypes(tmp_path):
    same = dict(K16_V8, v_cache_dtype="auto")  # the reference arm is K auto / V auto too
    with pytest.raises(SystemExit) as err:
        gsm8k.main(["--out", str(tmp_path / "g.jsonl"), "--cell", cell.to_json(same)])
    message = str(err.value)
    assert "same cache dtypes: reference K auto / V auto, test K auto / V auto" in message
    assert not (tmp_path / "g.jsonl").exists()
    reference, test = gsm8k.arms(K16_V8)
    assert cell.cache_dtypes(reference) == ("auto", "auto")
    assert test == K16_V8 and reference["model"] == test["model"]


def test_every_record_carries_the_cell(tmp_path):
    args = common.parser("x").parse_args(
        ["--out", str(tmp_path / "r"), "--cell", cell.to_json(K16_V8)]
    )
    common.write_records(args.out, [{"metric": "m", "value": 1.0}], args.cell)
    (record,) = [json.loads(line) for line in args.out.read_text().splitlines()]
    assert record == {"metric": "m", "value": 1.0, "cell": K16_V8}


def test_a_bad_cell_argument_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        common.parser("x").parse_args(["--out", "o", "--cell", '{"model": "m"}'])
    assert "missing ['dtype', 'k_cache_dtype'" in capsys.readouterr().err


def gate_run(tmp_path, arms):
    """A decode-full run whose run stage writes a GSM8K delta with the given arms (a fixture)."""

    def run(ctx):
        ctx.metric(metric="gsm8k_delta_points", value=0.5, arms=arms, fixture=True)

    def ok(ctx):
        pass

    functions = dict(
        reproduce.stages.STAGE_FUNCTIONS, doctor=ok, fetch=ok, build=ok, run=run, upload=ok
    )
    Pipeline("decode-full", STAGE_SETS["decode-full"], tmp_path / "g", functions, CPU_ENV).run()
    report = json.loads((tmp_path / "g/report.json").read_text())
    return {g["gate"]: g for g in report["gates"]}["gsm8k"], report


def test_the_report_refuses_a_gate_record_whose_arms_share_cache_dtypes(tmp_path):
    reference, test = gsm8k.arms(K16_V8)
    gate, report = gate_run(tmp_path / "a", {"reference": reference, "test": test})
    assert gate["status"] == "pass" and report["cell"] == K16_V8
    gate, _ = gate_run(tmp_path / "b", {"reference": reference, "test": reference})
    assert gate["status"] == "fail" and "same cache dtypes" in gate["reason"]
    gate, _ = gate_run(tmp_path / "c", None)
    assert gate["status"] == "fail" and "does not name the two arms" in gate["reason"]
    assert (
        "Decode cell: Qwen/Qwen2.5-7B-Instruct bfloat16, K auto / V fp8_e4m3, FLASHINFER"
        in (tmp_path / "a/g/report.md").read_text()
    )
