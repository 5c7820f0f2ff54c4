"""Figures: drawn from data, byte-identical across runs, and bad data fails by name."""

import pytest

from paper.render import figures
from paper.render.testdata import kv_files


def test_kv_figure_is_a_reproducible_pdf(tmp_path):
    files = kv_files(tmp_path)
    a, b = tmp_path / "a.pdf", tmp_path / "b.pdf"
    assert figures.main(["kv_cache", "--out", str(a), *files]) == 0
    assert figures.main(["kv_cache", "--out", str(b), *files]) == 0
    data = a.read_bytes()
    assert data.startswith(b"%PDF")
    assert b"CreationDate" not in data
    assert data == b.read_bytes()


def test_figure_depends_on_the_data(tmp_path):
    files = kv_files(tmp_path)
    a, b = tmp_path / "a.pdf", tmp_path / "b.pdf"
    figures.main(["kv_cache", "--out", str(a), *files])
    text = open(files[0]).read()
    assert ",9437184" in text  # standard attention's model cache at 256 tokens
    open(files[0], "w").write(text.replace(",9437184", ",1", 1))
    figures.main(["kv_cache", "--out", str(b), *files])
    assert a.read_bytes() != b.read_bytes()


def test_missing_data_is_named(tmp_path, capsys):
    assert figures.main(["ratio_cpu", "--out", str(tmp_path / "x.pdf")]) == 1
    assert "paper/data/ratio_cpu/val_curves.csv is missing" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["nope", "KV_CACHE"])
def test_unknown_figure(tmp_path, name):
    assert figures.main([name, "--out", str(tmp_path / "x.pdf")]) == 2
