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
