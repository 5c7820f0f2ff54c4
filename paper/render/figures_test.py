"""Figures: drawn from an imported run, byte-identical across runs, bad data fails by name."""

import json

import pytest

from paper.render import figures
from paper.render.testdata import RUNS, files, gpt2_pruning_run, kv_run, ratio_run


@pytest.mark.parametrize("experiment", sorted(RUNS))
def test_each_experiment_draws_a_reproducible_pdf(tmp_path, experiment):
    fs = files(RUNS[experiment](tmp_path / "set"))
    a, b = tmp_path / "a.pdf", tmp_path / "b.pdf"
    assert figures.main(["set", "--out", str(a), *fs]) == 0
    assert figures.main(["set", "--out", str(b), *fs]) == 0
    pdf = a.read_bytes()
    assert pdf.startswith(b"%PDF") and b"CreationDate" not in pdf
    assert pdf == b.read_bytes()


def test_figure_depends_on_the_data(tmp_path):
    d = ratio_run(tmp_path / "r")
    a, b = tmp_path / "a.pdf", tmp_path / "b.pdf"
    figures.main(["r", "--out", str(a), *files(d)])
    text = (d / "val_curves.csv").read_text()
    (d / "val_curves.csv").write_text(text.replace(",2.2\n", ",2.9\n", 1))
    assert text != (d / "val_curves.csv").read_text()
    figures.main(["r", "--out", str(b), *files(d)])
    assert a.read_bytes() != b.read_bytes()


def test_missing_data_is_named(tmp_path, capsys):
    fs = [f for f in files(kv_run(tmp_path / "k")) if not f.endswith("summary.json")]
    assert figures.main(["k", "--out", str(tmp_path / "x.pdf"), *fs]) == 1
    assert "paper/data/k/summary.json is missing" in capsys.readouterr().err


def test_unknown_experiment_is_refused(tmp_path, capsys):
    d = kv_run(tmp_path / "k")
    m = json.loads((d / "manifest.json").read_text())
    (d / "manifest.json").write_text(json.dumps(dict(m, experiment="nope")))
    assert figures.main(["k", "--out", str(tmp_path / "x.pdf"), *files(d)]) == 1
    assert "'nope' has no renderer; accepted:" in capsys.readouterr().err


def test_the_forest_plot_draws_the_summarys_differences(tmp_path):
    d = gpt2_pruning_run(tmp_path / "g")
    a, b = tmp_path / "a.pdf", tmp_path / "b.pdf"
    assert figures.main(["g", "--out", str(a), *files(d)]) == 0
    s = json.loads((d / "summary.json").read_text())
    s["steps"][1].update(difference=-0.2, low=-0.3, high=-0.1, vs_reference="better")
    (d / "summary.json").write_text(json.dumps(s))
    assert figures.main(["g", "--out", str(b), *files(d)]) == 0
    assert a.read_bytes() != b.read_bytes()
