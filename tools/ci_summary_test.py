"""The CI count: passed, failed (including never built), skipped by tag."""

import json

from tools import ci_summary


def configured(label, kind="py_test rule", tags=()):
    return {
        "id": {"targetConfigured": {"label": label}},
        "configured": {"targetKind": kind, "tag": list(tags)},
    }


def summary(label, status):
    return {"id": {"testSummary": {"label": label}}, "testSummary": {"overallStatus": status}}


FINISHED_FAIL = {
    "id": {"buildFinished": {}},
    "finished": {"exitCode": {"name": "BUILD_FAILURE", "code": 1}},
}
FINISHED_OK = {"id": {"buildFinished": {}}, "finished": {"overallSuccess": True}}

EVENTS = [
    configured("//a:ok"),
    configured("//a:cached"),
    configured("//a:flaky"),
    configured("//a:bad"),
    configured("//a:broken_build"),
    configured("//a:timeout"),
    configured("//k:gpu_test", tags=["gpu"]),
    configured("//a:lib", kind="py_library rule"),
    summary("//a:ok", "PASSED"),
    summary("//a:cached", "PASSED"),
    summary("//a:flaky", "FLAKY"),
    summary("//a:bad", "FAILED"),
    summary("//a:timeout", "TIMEOUT"),
    FINISHED_FAIL,
]


def test_counts():
    passed, failed, skipped = ci_summary.summarize(EVENTS)
    assert passed == ["//a:cached", "//a:flaky", "//a:ok"]
    assert failed == ["//a:bad", "//a:broken_build", "//a:timeout"]
    assert skipped == ["//k:gpu_test"]


def test_main_prints_the_line_ci_reads(tmp_path, capsys):
    bep = tmp_path / "bep.json"
    bep.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    assert ci_summary.main([str(bep)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "3 passed, 3 failed, 1 skipped"


def test_unreadable_file_is_a_failure(tmp_path, capsys):
    assert ci_summary.main([str(tmp_path / "missing.json")]) == 1
    assert capsys.readouterr().out.strip().endswith("0 passed, 1 failed")


def skipped_as_incompatible(label):
    return {"id": {"targetCompleted": {"label": label}}, "aborted": {"reason": "SKIPPED"}}


def test_incompatible_targets_are_skipped_not_failed():
    events = [
        configured("//k:ok"),
        configured("//k:other_vendor"),
        skipped_as_incompatible("//k:other_vendor"),
        summary("//k:ok", "PASSED"),
        FINISHED_OK,
    ]
    assert ci_summary.summarize(events) == (["//k:ok"], [], ["//k:other_vendor"])


def test_gpu_tagged_test_that_ran_counts_by_its_result():
    events = [
        configured("//k:gpu_test", tags=["gpu"]),
        summary("//k:gpu_test", "FAILED"),
        FINISHED_FAIL,
    ]
    assert ci_summary.summarize(events) == ([], ["//k:gpu_test"], [])


def test_failed_build_with_nothing_counted_is_a_failure():
    # A package that does not load leaves no targetConfigured event at all.
    passed, failed, _ = ci_summary.summarize(
        [configured("//a:ok"), summary("//a:ok", "PASSED"), FINISHED_FAIL]
    )
    assert passed == ["//a:ok"] and failed == [ci_summary.BUILD_FAILURE]


def test_no_events_at_all_is_a_failure(tmp_path, capsys):
    bep = tmp_path / "bep.json"
    bep.write_text("")
    assert ci_summary.main([str(bep)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "0 passed, 1 failed, 0 skipped"
