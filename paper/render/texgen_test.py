"""Data -> LaTeX: the macros carry the data's numbers, and bad data fails by name."""

import json

import pytest

from paper.render import texgen
from paper.render.data import DataError
from paper.render.testdata import kv_files, write_csv


def macros_of(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("\\newcommand{\\"):
            name, value = line[len("\\newcommand{\\") :].split("}{", 1)
            out[name] = value[:-1]
    return out


def test_kv_cache_macros_carry_the_measured_values(tmp_path):
    macros, table = texgen.kv_cache(kv_files(tmp_path))
    m = macros_of(macros)
    assert m["KvStdBytesHalf"] == "3{,}072"
    assert m["KvMlaBytesHalf"] == "512"
    assert m["KvSpliceBytesHalf"] == "256"
    assert m["KvSpliceReduction"] == "12.0"
    assert m["KvMlaReduction"] == "6.0"
    assert m["KvTokensList"] == "256 and 512"
    assert "\\label{tab:kv-cache}" in table and "KVSplice latent" in table


def test_a_changed_value_changes_the_macro(tmp_path):
    m = macros_of(texgen.kv_cache(kv_files(tmp_path, d_model=1024))[0])
    assert m["KvDModel"] == "1{,}024"


def test_missing_file_is_named(tmp_path):
    files = kv_files(tmp_path)[:1]  # no config.json
    with pytest.raises(DataError, match=r"paper/data/kv_cache/config\.json is missing"):
        texgen.kv_cache(files)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "cache_bytes.csv"
    path.write_text("variant,dtype\nstandard,float16\n")
    cfg = tmp_path / "config.json"
    cfg.write_text("{}")
    with pytest.raises(DataError, match=r"cache_bytes\.csv: missing column\(s\) tokens"):
        texgen.kv_cache([str(path), str(cfg)])


def test_bad_value_is_named_with_its_line(tmp_path):
    files = kv_files(tmp_path)
    text = open(files[0]).read().replace(",256,1,", ",lots,1,", 1)
    open(files[0], "w").write(text)
    with pytest.raises(DataError, match=r"cache_bytes\.csv:2: column tokens = 'lots' is not a int"):
        texgen.kv_cache(files)


def test_bad_json_is_named(tmp_path):
    files = kv_files(tmp_path)
    open(files[1], "w").write("{not json")
    with pytest.raises(DataError, match=r"config\.json: not valid JSON"):
        texgen.kv_cache(files)


def test_cli_reports_the_bad_file_and_fails(tmp_path, capsys):
    out = tmp_path / "m.tex"
    code = texgen.main(["pruning", "--macros", str(out), str(tmp_path / "nothing.csv")])
    assert code == 1
    assert "paper/data/pruning/runs.csv is missing" in capsys.readouterr().err
    assert not out.exists()


def test_cli_rejects_unknown_dataset(tmp_path, capsys):
    assert texgen.main(["nope", "--macros", str(tmp_path / "m.tex")]) == 2
    assert "accepted: kv_cache" in capsys.readouterr().out


def test_pruning_summary(tmp_path):
    rows = [
        {"method": "magnitude", "target_sparsity": 0.0, "seed": s, "achieved_sparsity": 0.0,
         "test_accuracy": 0.97}
        for s in (0, 1)
    ] + [
        {"method": m, "target_sparsity": 0.9, "seed": s, "achieved_sparsity": 0.9,
         "test_accuracy": acc}
        for m, acc in (("magnitude", 0.965), ("random", 0.5))
        for s in (0, 1)
    ]  # fmt: skip
    csv_path = write_csv(tmp_path / "runs.csv", rows)
    cfg = tmp_path / "config.json"
    keys = ("hidden", "epochs", "seeds", "train_samples", "test_samples")
    cfg.write_text(json.dumps(dict.fromkeys(keys, 2)))
    macros, table = texgen.pruning([str(csv_path), str(cfg)])
    m = macros_of(macros)
    assert m["PruneDenseAcc"] == "97.0"
    assert m["PruneMagAccXC"] == "96.5"
    assert m["PruneRandAccXC"] == "50.0"
    assert m["PruneMagMaxWithinTol"] == "90"
    assert m["PruneTopTarget"] == "90"


def test_decode_without_results_says_why(tmp_path):
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"status": "not_run", "reason": "no GPU_run yet"}))
    macros, table = texgen.decode_bandwidth([str(status)])
    assert "\\DecodeAvailablefalse" in macros
    assert macros_of(macros)["DecodeStatus"] == "no GPU\\_run yet"


def test_decode_status_must_be_known(tmp_path):
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"status": "done", "reason": "x"}))
    with pytest.raises(DataError, match="accepted: 'not_run'"):
        texgen.decode_bandwidth([str(status)])


def test_macro_names_are_letters_only():
    m = texgen.Macros("x")
    with pytest.raises(ValueError, match="letters only"):
        m.add("Acc90", "1")
    m.add("AccXC", "1")
    with pytest.raises(ValueError, match="defined twice"):
        m.add("AccXC", "2")


def test_roman_and_escape():
    assert texgen.roman(95) == "XCV"
    assert texgen.percent_name(0.98) == "XCVIII"
    assert texgen.escape("a_b%c") == "a\\_b\\%c"


def test_provenance_lists_each_manifest(tmp_path):
    man = {
        "name": "kv_cache",
        "command": "bazel run //paper/measure:kv_cache_bytes -- --out x",
        "git_commit": "abc123",
        "sources_clean": True,
        "machine": {"cpu": "Xeon", "cpu_cores": 2, "gpu": "none", "os": "Linux"},
        "versions": {"python": "3.11.2", "torch": "2.13.0+cpu"},
        "created_utc": "2026-11-23",
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(man))
    text, _ = texgen.provenance([str(path)])
    assert "a\\allowbreak{}b\\allowbreak{}c" in text and "(sources clean)" in text
    assert "torch 2.13.0+cpu" in text
    del man["git_commit"]
    path.write_text(json.dumps(man))
    with pytest.raises(DataError, match=r"manifest\.json: missing key\(s\) git_commit"):
        texgen.provenance([str(path)])


def test_decode_cpu_macros(tmp_path):
    rows = [
        {"variant": v, "batch": 1, "context_tokens": t, "kv_bytes": nbytes * t,
         "median_us": us * t, "achieved_gbps": nbytes / (us * 1e3), "gemv_gbps": 10.0}
        for v, nbytes, us in (("standard", 6144, 1.0), ("mla", 1024, 0.5))
        for t in (1024, 2048)
    ]  # fmt: skip
    csv_path = write_csv(tmp_path / "decode_cpu.csv", rows)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"threads": 1, "reps": 5, "dtype": "float32"}))
    macros, table = texgen.decode_cpu([str(csv_path), str(cfg)])
    m = macros_of(macros)
    assert m["DecCpuBytesRatio"] == "6.0"
    assert m["DecCpuTimeRatio"] == "2.0"
    assert m["DecCpuTokensMax"] == "2{,}048"
    assert "\\label{tab:decode-cpu}" in table
    rows[0]["variant"] = "other"
    write_csv(csv_path, rows)
    with pytest.raises(DataError, match="needs standard and mla"):
        texgen.decode_cpu([str(csv_path), str(cfg)])
