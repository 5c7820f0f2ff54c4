"""import_results: copies JSON/CSV with the manifest, atomically, and refuses bad input."""

import json

import pytest

from paper import import_results as imp

MANIFEST = {
    "name": "decode_bandwidth",
    "command": "bazel run //kernels:bench",
    "git_commit": "0123abc",
    "machine": {"gpu": "H100"},
    "versions": {"torch": "2.13.0"},
    "created_utc": "2026-11-23",
}


def result_dir(tmp_path, manifest=MANIFEST):
    d = tmp_path / "run"
    (d / "json").mkdir(parents=True)
    (d / "plots").mkdir()
    (d / "manifest.json").write_text(json.dumps(manifest))
    (d / "results.csv").write_text("batch,context_tokens\n1,2048\n")
    (d / "json" / "metrics.json").write_text("{}")
    (d / "plots" / "a.png").write_bytes(b"\x89PNG")
    (d / "summary.md").write_text("# run")
    return d


def test_imports_json_and_csv_with_manifest(tmp_path):
    dest, files = imp.import_results(result_dir(tmp_path), tmp_path / "data")
    assert dest == tmp_path / "data" / "decode_bandwidth"
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == ["json/metrics.json", "manifest.json", "results.csv"]
    assert sorted(map(str, files)) == got


def test_reimport_replaces_the_old_data_and_leaves_no_temporaries(tmp_path):
    data = tmp_path / "data"
    (data / "decode_bandwidth").mkdir(parents=True)
    (data / "decode_bandwidth" / "status.json").write_text("{}")
    imp.import_results(result_dir(tmp_path), data)
    assert not (data / "decode_bandwidth" / "status.json").exists()
    assert [p.name for p in data.iterdir()] == ["decode_bandwidth"]


def test_name_override(tmp_path):
    dest, _ = imp.import_results(result_dir(tmp_path), tmp_path / "data", name="h100_run")
    assert dest.name == "h100_run"


def test_missing_manifest_is_refused(tmp_path):
    d = result_dir(tmp_path)
    (d / "manifest.json").unlink()
    with pytest.raises(imp.ImportError_, match="manifest.json not found"):
        imp.import_results(d, tmp_path / "data")


def test_incomplete_manifest_names_the_missing_keys(tmp_path):
    bad = {k: v for k, v in MANIFEST.items() if k not in ("git_commit", "versions")}
    with pytest.raises(imp.ImportError_, match=r"missing key\(s\) git_commit, versions"):
        imp.import_results(result_dir(tmp_path, bad), tmp_path / "data")
    assert not (tmp_path / "data" / "decode_bandwidth").exists()


def test_bad_name_is_refused(tmp_path):
    with pytest.raises(imp.ImportError_, match="'../x' is not accepted"):
        imp.import_results(result_dir(tmp_path), tmp_path / "data", name="../x")


def test_cli_error_exit(tmp_path, capsys):
    assert imp.main([str(tmp_path / "nowhere"), "--data-dir", str(tmp_path / "d")]) == 1
    assert "is not a directory" in capsys.readouterr().err
