"""compare reads installed runs' JSONL, tabulates the final figures and plots a metric."""

import json
import os

import pytest

from tools.compare import compare


def _installed(tmp_path, name, runs):
    """An installed run directory: runs/<run>/metrics.jsonl for each run's losses."""
    d = tmp_path / name
    for run, losses in runs.items():
        (d / "runs" / run).mkdir(parents=True)
        recs = [
            {"iter": i, "kind": "train", "loss": v, "tokens_per_s": 100.0 * i}
            for i, v in enumerate(losses, 1)
        ]
        recs.append(
            {"iter": len(losses), "kind": "eval", "val_loss": losses[-1] + 0.1, "val_ppl": 2.0}
        )
        path = d / "runs" / run / "metrics.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
        with open(path, "a") as f:
            f.write('{"iter": 99, "kind": "tr')  # torn by a kill: ignored
    (d / "runs" / "GPT2").mkdir(parents=True)  # a measurement: result.json, no metrics
    (d / "runs" / "GPT2" / "result.json").write_text("{}")
    return str(d)


def test_table_and_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    a = _installed(tmp_path, "a", {"step00-s1337": [5.0, 4.0, 3.0], "step08-s1337": [4.0]})
    b = _installed(tmp_path, "b", {"step00-s1337": [6.0, 5.5]})
    out = tmp_path / "out"
    assert compare.main([a, b, "--out", str(out), "--metric", "loss"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith("| source | run | iters |")
    assert f"| {a} | step00-s1337 | 3 | 4.000 | 3.100 | 2.000 | 3.100 | 200.000 |" in text
    assert f"| {a} | step08-s1337 | 1 | 4.000 | 4.100 |" in text
    assert f"| {b} | step00-s1337 | 2 | 5.750 | 5.600 |" in text
    assert "GPT2" not in text and len(text.splitlines()) == 5
    assert os.path.getsize(out / "compare_loss.png") > 10_000
    assert (out / "compare.md").read_text() == text


def test_a_directory_without_runs_is_named(tmp_path):
    (tmp_path / "steps").mkdir()
    with pytest.raises(FileNotFoundError, match="no runs/ directory .is it an installed run"):
        compare.load_run(str(tmp_path))
