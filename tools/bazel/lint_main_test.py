"""The lint test really fails: on a badly formatted BUILD file and on unformatted Python."""

import os
import shutil
from pathlib import Path

import pytest

from tools.bazel import lint_main


def buildifier():
    """The pinned buildifier from runfiles, or one on PATH for plain pytest."""
    runfile = Path("../buildifier/buildifier-linux_amd64")
    if runfile.exists():
        return str(runfile)
    found = os.environ.get("BUILDIFIER") or shutil.which("buildifier")
    if not found:
        pytest.skip("no buildifier: run under bazel test, or set BUILDIFIER")
    return found


GOOD_BUILD = 'filegroup(\n    name = "x",\n    srcs = ["a.txt"],\n)\n'
BAD_BUILD = 'filegroup(name="x",srcs=["a.txt"])\n'
GOOD_PY = "def f(x):\n    return x + 1\n"
UNFORMATTED_PY = "def f( x ):\n  return x+1\n"
LINT_PY = "import os\n\n\ndef f(x):\n    return x + 1\n"  # unused import: ruff F401


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_formatted_files_pass(tmp_path):
    assert lint_main.check_bazel(buildifier(), [write(tmp_path, "BUILD.bazel", GOOD_BUILD)]) == []
    assert lint_main.check_python([write(tmp_path, "ok.py", GOOD_PY)]) == []


def test_badly_formatted_build_file_fails(tmp_path):
    problems = lint_main.check_bazel(buildifier(), [write(tmp_path, "BUILD.bazel", BAD_BUILD)])
    assert len(problems) == 1 and "buildifier" in problems[0]


def test_unformatted_python_fails(tmp_path):
    problems = lint_main.check_python([write(tmp_path, "bad.py", UNFORMATTED_PY)])
    assert any(p.startswith("black") for p in problems)


def test_ruff_finding_fails(tmp_path):
    problems = lint_main.check_python([write(tmp_path, "lint.py", LINT_PY)])
    assert any(p.startswith("ruff") and "F401" in p for p in problems)


def test_main_exit_status(tmp_path):
    bad = write(tmp_path, "bad.py", UNFORMATTED_PY)
    assert lint_main.main(["--buildifier", buildifier(), f"--python={bad}"]) == 1


def test_junit_report(tmp_path):
    report = tmp_path / "test.xml"
    lint_main.write_junit(report, 3, ["black would reformat:\n<x> & y"])
    text = report.read_text()
    assert 'failures="1"' in text and "&lt;x&gt; &amp; y" in text
    lint_main.write_junit(report, 3, [])
    assert 'failures="0"' in report.read_text() and "<failure" not in report.read_text()
