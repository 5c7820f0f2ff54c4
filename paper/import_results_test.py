"""import_results: copies an installed run atomically, and refuses what the paper cannot print."""

import json

import pytest

from experiments.record import REQUIRED_FIELDS
from paper import import_results as imp
from paper.render.testdata import decode_run, kv_run, ratio_run


def run_dir(tmp_path, make=ratio_run, **changes):
    d = make(tmp_path / "results" / "run", **changes)
    (d / "summary.md").write_text("# run")
    (d / "plots").mkdir()
    (d / "plots" / "a.png").write_bytes(b"\x89PNG")
    (d / "runs" / "step00-s1337").mkdir(parents=True)
    (d / "runs" / "step00-s1337" / "metrics.jsonl").write_text("{}\n")
    return d


def edit(path, change):
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def test_copies_manifest_summary_and_curves_only(tmp_path):
    d = run_dir(tmp_path)
    dest, files = imp.import_run(d, tmp_path / "data")
    assert dest == tmp_path / "data" / "gpt2_ratio_ablation"
    assert sorted(p.name for p in dest.iterdir()) == sorted(files)
    assert files == ["manifest.json", "summary.json", "val_curves.csv"]
    assert (dest / "summary.json").read_bytes() == (d / "summary.json").read_bytes()


def test_a_run_without_curves_imports_without_them(tmp_path):
    dest, files = imp.import_run(run_dir(tmp_path, kv_run), tmp_path / "data")
    assert files == ["manifest.json", "summary.json"] and dest.name == "kvsplice_cache"


def test_reimport_replaces_the_old_data_and_leaves_no_temporaries(tmp_path):
    data = tmp_path / "data"
    (data / "gpt2_ratio_ablation").mkdir(parents=True)
    (data / "gpt2_ratio_ablation" / "old.csv").write_text("x\n")
    imp.import_run(run_dir(tmp_path), data)
    assert not (data / "gpt2_ratio_ablation" / "old.csv").exists()
    assert [p.name for p in data.iterdir()] == ["gpt2_ratio_ablation"]


def test_a_failed_copy_leaves_the_old_data_and_no_temporaries(tmp_path, monkeypatch):
    data = tmp_path / "data"
    imp.import_run(run_dir(tmp_path / "first"), data)
    before = (data / "gpt2_ratio_ablation" / "summary.json").read_bytes()
    real, calls = imp.atomic_write_bytes, []

    def fail_on_second(path, payload):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, payload)

    monkeypatch.setattr(imp, "atomic_write_bytes", fail_on_second)
    second = run_dir(tmp_path / "second")
    edit(second / "summary.json", lambda s: s["steps"][0].update(mean=9.0))
    try:
        imp.import_run(second, data)
    except OSError:
        pass
    else:
        raise AssertionError("the planted write failure did not surface")
    assert (data / "gpt2_ratio_ablation" / "summary.json").read_bytes() == before
    assert [p.name for p in data.iterdir()] == ["gpt2_ratio_ablation"]


def _drop(manifest, dotted):
    *parents, last = dotted.split(".")
    for p in parents:
        manifest = manifest[p]
    del manifest[last]


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_a_manifest_missing_a_field_is_refused_naming_it_and_the_file(tmp_path, field):
    d = run_dir(tmp_path)
    edit(d / "manifest.json", lambda m: _drop(m, field))
    with pytest.raises(imp.ImportRefused) as err:
        imp.import_run(d, tmp_path / "data")
    message = str(err.value)
    assert f"{d / 'manifest.json'}: missing field {field} (" in message
    assert "\n" not in message
    assert not (tmp_path / "data" / "gpt2_ratio_ablation").exists()


def test_null_commit_is_refused(tmp_path):
    d = run_dir(tmp_path, git={"commit": None, "dirty": False})
    with pytest.raises(imp.ImportRefused, match=r"manifest\.json: git\.commit is null"):
        imp.import_run(d, tmp_path / "data")


def test_unfinished_run_is_refused_naming_the_runs(tmp_path):
    d = run_dir(tmp_path)

    def unfinish(s):
        s["complete"] = False
        s["runs"][1].update(status="failed", failure="nan_loss")
        s["runs"][2].update(status="failed", failure="error")

    edit(d / "summary.json", unfinish)
    with pytest.raises(imp.ImportRefused) as err:
        imp.import_run(d, tmp_path / "data")
    assert f"{d / 'summary.json'}: complete is false" in str(err.value)
    assert "step00-s1338 (failed: nan_loss), step02-s1337 (failed: error)" in str(err.value)
    (d / "summary.json").unlink()
    with pytest.raises(imp.ImportRefused, match=r"summary\.json not found: the run is unfinished"):
        imp.import_run(d, tmp_path / "data")
    assert not (tmp_path / "data" / "gpt2_ratio_ablation").exists()


@pytest.mark.parametrize("name", ["manifest.json", "summary.json"])
def test_a_record_of_another_schema_is_refused(tmp_path, name):
    d = run_dir(tmp_path)
    edit(d / name, lambda obj: obj.update(schema=1))
    with pytest.raises(imp.ImportRefused, match=f"{name}: schema is 1; the paper imports records"):
        imp.import_run(d, tmp_path / "data")


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("manifest.json", lambda m: m.update(config=None), "config is None, not a dict"),
        ("manifest.json", lambda m: m.pop("machine"), "missing field machine.device, machine"),
        ("summary.json", lambda s: s.pop("steps"), "missing key.s. steps of a Summary"),
        ("summary.json", lambda s: s["checks"].append({"name": "x"}), r"checks\[0\]: missing"),
    ],
    ids=["config-null", "no-machine", "no-steps", "bad-check"],
)
def test_a_record_not_of_the_declared_shape_is_refused(tmp_path, name, change, message):
    d = run_dir(tmp_path)
    edit(d / name, change)
    with pytest.raises(imp.ImportRefused, match=message) as err:
        imp.import_run(d, tmp_path / "data")
    assert str(err.value).startswith(str(d / name)) and "\n" not in str(err.value)


def test_every_run_needs_its_inputs_digest(tmp_path):
    d = run_dir(tmp_path)
    edit(d / "manifest.json", lambda m: m["runs"].update({"step02-s1338": "not a digest"}))
    with pytest.raises(imp.ImportRefused, match="sha256 of its inputs .*not one: step02-s1338"):
        imp.import_run(d, tmp_path / "data")
    edit(d / "manifest.json", lambda m: m["runs"].pop("step02-s1338"))
    with pytest.raises(imp.ImportRefused) as err:
        imp.import_run(d, tmp_path / "data")
    assert "summary.json: its runs (step00-s1337, step00-s1338, step02-s1337, step02-s1338) " in (
        str(err.value)
    )
    assert "are not manifest.json's runs (step00-s1337, step00-s1338, step02-s1337)" in (
        str(err.value)
    )
    assert not (tmp_path / "data" / "gpt2_ratio_ablation").exists()


def test_dirty_tree_is_refused_without_the_flag(tmp_path):
    d = run_dir(tmp_path, kv_run, git={"commit": "ab" * 20, "dirty": True})
    with pytest.raises(imp.ImportRefused, match=r"git\.dirty is true.*--allow-dirty"):
        imp.import_run(d, tmp_path / "data")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
    dest, _ = imp.import_run(d, tmp_path / "data", allow_dirty=True)
    assert json.loads((dest / "manifest.json").read_text())["git"]["dirty"] is True


def test_unknown_experiment_is_refused_naming_the_accepted(tmp_path):
    d = run_dir(tmp_path, decode_run)
    edit(d / "manifest.json", lambda m: m.update(experiment="gpt2_variants"))
    with pytest.raises(imp.ImportRefused, match="'gpt2_variants' has no renderer.*accepted: gpt2_"):
        imp.import_run(d, tmp_path / "data")


def test_summary_of_another_run_is_refused(tmp_path):
    d = run_dir(tmp_path)
    edit(d / "summary.json", lambda s: s.update(run_id="cpu-other"))
    with pytest.raises(imp.ImportRefused, match="run_id is 'cpu-other', but manifest.json says"):
        imp.import_run(d, tmp_path / "data")


def test_name_override_and_one_set_per_experiment(tmp_path):
    data = tmp_path / "data"
    dest, _ = imp.import_run(run_dir(tmp_path), data, name="ratio_cpu")
    assert dest.name == "ratio_cpu"
    with pytest.raises(imp.ImportRefused, match="ratio_cpu/manifest.json already holds a gpt2_"):
        imp.import_run(run_dir(tmp_path / "again"), data)
    imp.import_run(run_dir(tmp_path / "again2"), data, name="ratio_cpu")  # replaces it


@pytest.mark.parametrize("name", ["../x", "Ratio", "provenance", "2x"])
def test_bad_name_is_refused(tmp_path, name):
    with pytest.raises(imp.ImportRefused, match=f"data set name '{name}' is not accepted"):
        imp.import_run(run_dir(tmp_path), tmp_path / "data", name=name)


def test_cli_error_is_one_line_and_exit_one(tmp_path, capsys):
    assert imp.main([str(tmp_path / "nowhere"), "--data-dir", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert "is not a directory" in err and err.count("\n") == 1
