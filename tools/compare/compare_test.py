"""compare reads runs' JSONL, tabulates the final figures and plots a metric."""

import json
import os

from tools.compare import compare


def _run(tmp_path, name, losses):
    d = tmp_path / name
    (d / "steps" / "s0").mkdir(parents=True)
    recs = [
        {"iter": i, "kind": "train", "loss": v, "tokens_per_s": 100.0 * i}
        for i, v in enumerate(losses, 1)
    ]
    recs.append({"iter": len(losses), "kind": "eval", "val_loss": losses[-1] + 0.1, "val_ppl": 2.0})
    (d / "steps" / "s0" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with open(d / "steps" / "s0" / "metrics.jsonl", "a") as f:
        f.write('{"iter": 99, "kind": "tr')  # torn by a kill: ignored
    return str(d)


def test_table_and_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    a = _run(tmp_path, "a", [5.0, 4.0, 3.0])
    b = _run(tmp_path, "b", [6.0, 5.5])
    out = tmp_path / "out"
    assert compare.main([a, b, "--out", str(out), "--metric", "loss"]) == 0
    text = capsys.readouterr().out
    assert f"| {a} | s0 | 3 | 4.000 | 3.100 | 2.000 | 3.100 | 200.000 |" in text
    assert f"| {b} | s0 | 2 | 5.750 | 5.600 |" in text
    assert os.path.getsize(out / "compare_loss.png") > 10_000
    assert (out / "compare.md").read_text() == text
