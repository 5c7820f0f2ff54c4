"""Every score's masks equal those of the reference's expressions on a trained GPT-2."""

from pruning import reference_agreement


def test_masks_agree_with_the_reference_transcription():
    rows, n = reference_agreement.agreement(steps=5, seed=0, width=64)
    assert n == 4 * 12 * 64 * 64 + 2048 * 64  # the blocks' Linear layers and the tied head
    assert set(rows) == set(reference_agreement.scores.SCORES)
    disagree = {name: a for name, a in rows.items() if a != [1.0] * 3}
    assert not disagree
