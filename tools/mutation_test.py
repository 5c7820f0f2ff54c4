"""//tools:mutation's own logic: targets, sampling, the equivalent list, the score."""

import pytest

from tools import mutation


def test_targets_expand_to_source_files_and_bad_ones_are_named(tmp_path):
    (tmp_path / "pkg").mkdir()
    for name in ("a.py", "b.py", "a_test.py", "__init__.py"):
        (tmp_path / "pkg" / name).write_text("")
    assert mutation.source_files(tmp_path, "pkg") == ["pkg/a.py", "pkg/b.py"]
    assert mutation.source_files(tmp_path, "pkg/b.py") == ["pkg/b.py"]
    assert mutation.tests_next_to(tmp_path, ["pkg/a.py"]) == ["pkg/a_test.py"]
    with pytest.raises(SystemExit, match="target 'nope' is not"):
        mutation.source_files(tmp_path, "nope")


def test_sample_is_evenly_spaced_and_capped():
    names = [f"m{i:02d}" for i in range(10)]
    assert mutation.sample(names, None) == names
    assert mutation.sample(names, 20) == names
    assert mutation.sample(list(reversed(names)), 5) == ["m00", "m02", "m04", "m06", "m08"]


def test_equivalent_list_needs_a_reason(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("# comment\n\nmod.x_f__mutmut_1  both branches return the same value\n")
    assert mutation.read_equivalent(good) == {
        "mod.x_f__mutmut_1": "both branches return the same value"
    }
    bad = tmp_path / "bad.txt"
    bad.write_text("mod.x_f__mutmut_2\n")
    with pytest.raises(SystemExit, match="bad.txt:1: 'mod.x_f__mutmut_2' has no reason"):
        mutation.read_equivalent(bad)


def test_score_counts_timeouts_as_killed_and_leaves_out_equivalents():
    results = {"k": 1, "t": 36, "s": 0, "e": 0, "n": 33, "unchecked": None}
    r = mutation.score(results, {"e": "same value"})
    assert (r["checked"], r["killed"], r["survived"], r["equivalent"]) == (5, 2, 3, 1)
    assert r["score"] == pytest.approx(2 / 4)
    assert r["surviving"] == ["n", "s"]
    assert mutation.score({"u": None}, {})["score"] is None
