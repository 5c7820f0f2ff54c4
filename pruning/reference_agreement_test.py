"""Every score's masks equal those of the reference's expressions on a trained GPT-2."""

import pytest

from pruning import reference_agreement


def test_masks_agree_with_the_reference_transcription():
    rows, n = reference_agreement.agreement(steps=5, seed=0, width=64)
    assert n == 4 * 12 * 64 * 64 + 2048 * 64  # the blocks' Linear layers and the tied head
    assert set(rows) == set(reference_agreement.scores.SCORES)
    disagree = {name: a for name, a in rows.items() if a != [1.0] * 3}
    assert not disagree


def test_the_table_prints_one_row_per_score(monkeypatch, capsys):
    calls = []

    def agreement(steps, seed):
        calls.append((steps, seed))
        return {"bitter7": [1.0, 0.99995, 0.5]}, 1234

    monkeypatch.setattr(reference_agreement, "agreement", agreement)
    reference_agreement.main([])
    reference_agreement.main(["--steps", "7", "--seed", "3"])
    assert calls == [(200, 0), (7, 3)]
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        "1,234 prunable weights after 200 AdamW steps (seed 0)",
        "| score | s = 0.5 | s = 0.7 | s = 0.9 |",
        "|---|---|---|---|",
        "| bitter7 | 100.0000% | 99.9950% | 50.0000% |",
    ]
    with pytest.raises(SystemExit, match="--steps 0 is invalid; accepted: an int >= 1"):
        reference_agreement.main(["--steps", "0"])
