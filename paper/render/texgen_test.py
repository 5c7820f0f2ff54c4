"""Imported run -> LaTeX: the macros carry the run's numbers, and bad data fails by name."""

import json

import pytest

from experiments.record import CURVE_COLUMNS
from paper.render import data, figures, texgen
from paper.render.data import DataError
from paper.render.testdata import (
    RUNS,
    decode_run,
    digest,
    files,
    gpt2_pruning_run,
    kv_run,
    macros_of,
    pruning_run,
    ratio_run,
)


def edit(path, change):
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def render(run, tmp_path, name="set", **kw):
    macros, table = texgen.render_set(name, files(run(tmp_path / name, **kw)))
    return macros_of(macros), table, macros


def test_ratio_macros_carry_the_summary(tmp_path):
    m, table, _ = render(ratio_run, tmp_path)
    assert m["RatioStepIName"] == "step00" and m["RatioStepIIName"] == "step02"
    assert m["RatioStepIMean"] == "2.210" and m["RatioStepIIMean"] == "2.110"
    assert m["RatioStepIStd"] == "0.014"
    assert m["RatioStepIVs"] == "reference" and m["RatioStepIIVs"] == "better"
    assert m["RatioBetter"] == "1" and m["RatioWorse"] == "0" and m["RatioUnresolved"] == "0"
    assert m["RatioBestName"] == "step02" and m["RatioEntropy"] == "3.321"
    # The budget the runs had (manifest train), not the profile's declared one (800).
    assert m["RatioDims"] == "2 layers, 2 heads, width 128" and m["RatioIters"] == "30"
    assert m["RatioBlock"] == "64" and m["RatioBatch"] == "12" and m["RatioProfile"] == "cpu"
    assert m["RatioSeeds"] == "2 seeds" and m["RatioStepIRuns"] == "2/2"
    assert m["RatioFloats"] == "\\input{generated/set_table.tex}"
    assert "2.210 $\\pm$ 0.014" in table and "407{,}552" in table
    # The difference and its interval beside the verdict; the caption names the test.
    assert m["RatioStepIIDiff"] == "$-0.100$ [$-0.130$, $-0.070$]" and m["RatioStepIDiff"] == "---"
    assert m["RatioComparisons"] == "1" and m["RatioTests"] == "the paired $t$-test"
    assert "Test: the paired $t$-test." in table and "Holm's correction over the table's 1" in table


def test_gpt2_pruning_prints_perplexity_sparsity_per_type_and_the_verdicts(tmp_path):
    m, table, _ = render(gpt2_pruning_run, tmp_path)
    assert [m[f"GptPruneStep{r}Name"] for r in ("I", "II", "III")] == [
        "adamw-none",
        "adamw-bitter7",
        "adamw-movement",
    ]
    assert m["GptPruneStepIMean"] == "2.110" and m["GptPruneStepIVs"] == "reference"
    assert m["GptPruneStepIIPpl"] == "8.63"  # the mean of exp(2.14) and exp(2.17)
    assert m["GptPruneStepIIDiff"] == "$+0.045$ [$+0.020$, $+0.070$]"
    assert m["GptPruneStepIIIVs"] == "worse" and m["GptPruneWorse"] == "2"
    assert m["GptPruneBetter"] == "0" and m["GptPruneComparisons"] == "2"
    assert m["GptPruneBestPrunedName"] == "adamw-bitter7" and m["GptPruneTarget"] == "50\\%"
    assert m["GptPruneMaxGap"] == "0.00" and m["GptPruneDims"] == "2 layers, 2 heads, width 128"
    # sparsity over all, attention, MLP and head, in percent, then the difference, the verdict
    assert "adamw-bitter7 & 2.155 $\\pm$ 0.021 & 8.63 & 50.0 & 45.0 & 55.0 & 40.0 & " in table
    assert "adamw-none & 2.110 $\\pm$ 0.014 & 8.25 & --- & --- & --- & --- & --- & reference" in (
        table
    )
    assert "Test: the paired $t$-test." in table
    # A cpu run: the GPU profiles' figures are not measured, and the table says so.
    assert m["GptPruneGpu"] == "not measured"
    assert "GPT-2 124M on FineWebEdu (the GPU profiles): not measured" in table
    gpu, gpu_table, _ = render(gpt2_pruning_run, tmp_path, name="gpu", device="cuda")
    assert gpu["GptPruneGpu"] == "measured in this run" and "not measured" not in gpu_table


def test_every_caption_names_the_run_and_marks_a_dirty_tree(tmp_path):
    for experiment, run in RUNS.items():
        _, clean, _ = render(run, tmp_path, name=experiment)
        assert "run \\texttt{cpu-{}\\allowbreak{}1a2b3c4d}" in clean, experiment
        assert "dirty tree" not in clean
        _, dirty, macros = render(
            run, tmp_path, name=experiment + "_d", git={"commit": "ab" * 20, "dirty": True}
        )
        assert dirty.count("dirty tree") == dirty.count("\\caption{"), experiment
        assert "dirty tree" in macros_of(macros)[texgen.RENDERERS[experiment].prefix + "Dirty"]


def test_the_reference_is_the_summarys_not_the_first_step(tmp_path):
    d = ratio_run(tmp_path / "r")

    def reorder(s):
        s["steps"].reverse()
        s["steps"][0]["vs_reference"] = "worse"  # step02 against step00, now second

    edit(d / "summary.json", reorder)
    m = macros_of(texgen.render_set("r", files(d))[0])
    assert m["RatioStepIName"] == "step02" and m["RatioStepIVs"] == "worse"
    assert m["RatioStepIIVs"] == "reference" and m["RatioRefName"] == "step00"
    assert m["RatioWorse"] == "1" and m["RatioBetter"] == "0"
    edit(d / "summary.json", lambda s: s.update(reference="step05"))
    with pytest.raises(DataError, match="the reference step 'step05' is not among the steps"):
        texgen.render_set("r", files(d))


def test_one_seed_has_no_std(tmp_path):
    d = ratio_run(tmp_path / "r")
    s = json.loads((d / "summary.json").read_text())
    s["steps"][1]["std"] = None
    (d / "summary.json").write_text(json.dumps(s))
    macros, table = texgen.render_set("r", files(d))
    assert macros_of(macros)["RatioStepIIStd"] == "---"
    assert " & 2/2 & 2.110 & $-0.100$ [$-0.130$, $-0.070$] & better \\\\" in table


KV_WANT = {  # GPT2_MLA's cache is 6x smaller than GPT2's, the first class
    "KvClassIName": "GPT2",
    "KvClassIIName": "GPT2\\_MLA",
    "KvClassIBytes": "12{,}288",
    "KvClassIIBytes": "2{,}048",
    "KvClassIIReduction": "6.0",
    "KvBestReduction": "6.0",
    "KvTokensList": "256 and 512",
    "KvMaxRelErr": "0.00",
}
PRUNE_WANT = {  # accuracy and sparsity reached per cell, in percent
    "PruneCellIAcc": "97.0",
    "PruneCellISparsity": "---",
    "PruneCellIIAcc": "95.5",
    "PruneCellIIStd": "0.7",
    "PruneCellIISparsity": "90.1",
    "PruneCellIITarget": "90",
    "PruneSparsestAcc": "95.5",
    "PruneMaxGap": "0.12",
    "PruneCellIIDiff": "$-1.5$ [$-7.9$, $+4.9$]",  # percentage points against the dense cell
    "PruneCellIIVs": "not resolved",
    "PruneCellIVs": "reference",
}


@pytest.mark.parametrize(
    "run, want, in_table",
    [(kv_run, KV_WANT, "6.0$\\times$"), (pruning_run, PRUNE_WANT, "95.5 $\\pm$ 0.7")],
    ids=["kvsplice_cache", "pruning_matrix"],
)
def test_macros_and_table_carry_the_summary(tmp_path, run, want, in_table):
    m, table, _ = render(run, tmp_path)
    assert {k: m[k] for k in want} == want
    assert in_table in table


def test_unmeasured_decode_prints_no_number(tmp_path):
    m, table, macros = render(decode_run, tmp_path)
    assert "\\DecodeMeasuredfalse" in macros and m["DecodeStatus"] == "not measured"
    assert "not measured" in table
    body = table.split("\\midrule", 1)[1].split("\\bottomrule", 1)[0]
    assert body.strip() == "\\multicolumn{3}{c}{not measured} \\\\", body
    assert "GBps" not in macros


def test_measured_decode_has_its_table(tmp_path):
    m, table, macros = render(decode_run, tmp_path, measured=True)
    assert "\\DecodeMeasuredtrue" in macros
    assert m["DecodeBestGBps"] == "1500" and m["DecodeBestCopyFrac"] == "50"
    assert m["DecodeCopyGBps"] == "3000" and "1500 & 50 & 2.00" in table


def test_decode_reads_the_summarys_extra(tmp_path):
    d = decode_run(tmp_path / "dec", measured=True)
    edit(d / "summary.json", lambda s: s["extra"].pop("copy_gbps"))
    with pytest.raises(DataError, match=r"summary\.json: extra: missing key\(s\) copy_gbps"):
        texgen.render_set("dec", files(d))


def test_kv_prints_the_one_preset_its_steps_declare(tmp_path):
    d = kv_run(tmp_path / "k")
    edit(d / "manifest.json", lambda m: m["config"]["steps"][1]["declaration"].update(preset="xl"))
    with pytest.raises(DataError, match='declare preset as "124m", "xl"; the paper prints one'):
        texgen.render_set("k", files(d))


def test_a_record_of_another_schema_is_refused(tmp_path):
    d = kv_run(tmp_path / "k")
    edit(d / "manifest.json", lambda m: m.update(schema=1))
    with pytest.raises(DataError, match=r"manifest\.json: schema is 1; the paper reads manifest"):
        texgen.render_set("k", files(d))


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("manifest.json", lambda m: m.update(runs=[]), r"manifest\.json: runs is \[\], not a dict"),
        ("manifest.json", lambda m: m.pop("train"), r"manifest\.json: missing key\(s\) train"),
        (
            "summary.json",
            lambda s: s["steps"][0].pop("mean"),
            r"summary\.json: steps\[0\]: missing key\(s\) mean of a StepRow",
        ),
        ("summary.json", lambda s: s["runs"][0].pop("run"), r"runs\[0\] lacks run"),
    ],
    ids=["runs-not-a-dict", "no-train", "step-without-mean", "run-row-without-run"],
)
def test_a_record_not_of_the_declared_shape_names_file_and_key(tmp_path, name, change, message):
    d = ratio_run(tmp_path / "r")
    edit(d / name, change)
    with pytest.raises(DataError, match=message):
        texgen.render_set("r", files(d))


def test_curves_are_read_by_the_records_columns():
    assert tuple(data.CURVE_TYPES) == CURVE_COLUMNS


def test_missing_file_is_named(tmp_path):
    fs = [f for f in files(ratio_run(tmp_path / "r")) if not f.endswith("val_curves.csv")]
    with pytest.raises(DataError, match=r"paper/data/r/val_curves\.csv is missing"):
        texgen.render_set("r", fs)


def test_missing_manifest_field_is_named(tmp_path):
    d = kv_run(tmp_path / "k")
    m = json.loads((d / "manifest.json").read_text())
    del m["machine"]["cpu"]
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"k/manifest\.json: missing field\(s\) machine\.cpu"):
        texgen.render_set("k", files(d))


def test_bad_curve_value_is_named_with_its_line(tmp_path):
    d = ratio_run(tmp_path / "r")
    text = (d / "val_curves.csv").read_text().replace(",15,", ",soon,", 1)
    (d / "val_curves.csv").write_text(text)
    with pytest.raises(DataError, match=r"val_curves\.csv:2: column iter = 'soon' is not a int"):
        texgen.render_set("r", files(d))


def test_unfinished_or_mismatched_summary_is_refused(tmp_path):
    d = pruning_run(tmp_path / "p")
    s = json.loads((d / "summary.json").read_text())
    (d / "summary.json").write_text(json.dumps(dict(s, run_id="other")))
    with pytest.raises(DataError, match="run_id 'other' but manifest.json says 'cpu-1a2b3c4d'"):
        texgen.render_set("p", files(d))
    (d / "summary.json").write_text(json.dumps(dict(s, complete=False)))
    with pytest.raises(DataError, match="complete is False"):
        texgen.render_set("p", files(d))


def test_unknown_experiment_names_the_accepted(tmp_path, capsys):
    d = kv_run(tmp_path / "k")
    m = json.loads((d / "manifest.json").read_text())
    (d / "manifest.json").write_text(json.dumps(dict(m, experiment="gpt2_variants")))
    out = tmp_path / "m.tex"
    code = texgen.main(
        ["--set", "k", "--macros", str(out), "--table", str(tmp_path / "t"), *files(d)]
    )
    assert code == 1 and not out.exists()
    err = capsys.readouterr().err
    assert "'gpt2_variants' has no renderer; accepted: gpt2_ratio_ablation, gpt2_pruning" in err


def test_figures_and_texgen_render_the_same_experiments():
    assert list(figures.RENDERERS) == list(texgen.RENDERERS)


def test_index_inputs_every_set_and_flags_its_experiment(tmp_path):
    mans = [
        str(ratio_run(tmp_path / "ratio") / "manifest.json"),
        str(
            decode_run(tmp_path / "dec", git={"commit": "cd" * 20, "dirty": True}) / "manifest.json"
        ),
    ]
    datasets, prov = texgen.index(mans)
    assert "\\input{generated/ratio_macros.tex}" in datasets
    assert "\\input{generated/dec_macros.tex}" in datasets
    assert "\\HaveRatiotrue" in datasets and "\\HaveDecodetrue" in datasets
    assert "\\newif\\ifHaveKv" in datasets and "\\HaveKvtrue" not in datasets
    assert "\\newif\\ifDecodeMeasured" in datasets
    assert prov.count("\\subsection*") == 2
    items = ("Run id", "Experiment", "Commit", "Inputs", "Machine", "Command", "Versions", "Date")
    for text in items:
        assert prov.count(f"\\item[{text}]") == 2, text
    # Every run's inputs digest, beside its name, on the line after the commit's.
    for run in ("step00-s1337", "step00-s1338", "step02-s1337", "step02-s1338", "decode"):
        assert f"\\newline {texgen.tt(run)} {texgen._hash(digest(run))}" in prov, run
    ratio = prov.split("\\subsection*")[2]
    assert ratio.index("\\item[Commit]") < ratio.index("\\item[Inputs] sha256 of what each")
    assert "(4 runs)" in ratio
    assert prov.count("dirty tree") == 1 and "torch 2.13.0+cpu" in prov
    assert "c\\allowbreak{}d" in prov and "Test CPU (2 cores)" in prov


def test_index_refuses_two_sets_of_one_experiment(tmp_path):
    mans = [str(kv_run(tmp_path / n) / "manifest.json") for n in ("a", "b")]
    with pytest.raises(DataError, match="paper/data/a and paper/data/b both hold a kvsplice_cache"):
        texgen.index(mans)


def test_macro_names_are_letters_only():
    m = texgen.Macros("X", "test")
    with pytest.raises(ValueError, match="letters only"):
        m.add("Acc90", "1")
    m.add("AccXC", "1")
    with pytest.raises(ValueError, match="defined twice"):
        m.add("AccXC", "2")


def test_roman_and_escape():
    assert texgen.roman(19) == "XIX"
    assert texgen.escape("a_b%c") == "a\\_b\\%c"
