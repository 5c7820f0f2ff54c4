"""The paper is byte-reproducible: two clean builds in different directories match
each other and the PDF that Bazel built in its sandbox.

Uses the same program as the latex_pdf action (tools/bazel/latex_main.py), on
the same sources (paper/sources.txt lists them), with the TeX tools recorded by
@local_toolchains.
"""

import datetime
import os
import shutil
from pathlib import Path

import pytest

from tools.bazel import latex_main


def tools():
    names = ("latexmk", "pdflatex", "bibtex")
    # Bazel passes @local_toolchains' paths; a plain pytest run looks on PATH.
    found = {t: os.environ.get("KNLP_" + t.upper()) or shutil.which(t) or "" for t in names}
    missing = [t for t, p in found.items() if not p]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found; run ./setup.sh")
    return found


def sources():
    listing = Path("paper/sources.txt")
    if not listing.exists():
        pytest.skip("run under `bazel test //paper:reproducible_test`")
    paths = listing.read_text().split()
    return {p.removeprefix("paper/"): p for p in paths}


def test_two_clean_builds_in_different_directories_are_identical(tmp_path):
    srcs = sources()
    epoch = int(os.environ["KNLP_SOURCE_DATE_EPOCH"])
    first = tmp_path / "a"
    second = tmp_path / "a much longer" / "and deeper" / "build directory"
    pdfs = []
    for workdir in (first, second):
        workdir.mkdir(parents=True)
        pdf, _log = latex_main.build("paper.tex", srcs, tools(), epoch, workdir)
        pdfs.append(pdf.read_bytes())
        assert str(workdir).encode() not in pdfs[-1], "the build directory leaked into the PDF"
    assert pdfs[0] == pdfs[1], "two clean builds differ"
    assert pdfs[0] == Path("paper/pdf.pdf").read_bytes(), "differs from Bazel's build"


def test_dates_come_from_source_date_epoch():
    if not Path("paper/pdf.pdf").exists():
        pytest.skip("run under `bazel test //paper:reproducible_test`")
    epoch = int(os.environ["KNLP_SOURCE_DATE_EPOCH"])
    stamp = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y%m%d%H%M%S")
    pdf = Path("paper/pdf.pdf").read_bytes()
    assert f"/CreationDate (D:{stamp}Z)".encode() in pdf
    assert f"/ModDate (D:{stamp}Z)".encode() in pdf


def test_a_latex_error_reports_the_relevant_lines_only(tmp_path):
    srcs = {"broken.tex": str(tmp_path / "broken.tex")}
    Path(srcs["broken.tex"]).write_text(
        "\\documentclass{article}\n\\begin{document}\nWe reach \\undefinedmacro{} ppl.\n"
        "\\end{document}\n"
    )
    workdir = tmp_path / "build"
    workdir.mkdir()
    with pytest.raises(latex_main.LatexError) as err:
        latex_main.build("broken.tex", srcs, tools(), 0, workdir)
    message = str(err.value)
    assert "broken.tex:3: Undefined control sequence." in message
    assert "\\undefinedmacro" in message
    log_lines = (workdir / "broken.log").read_text().count("\n")
    assert message.count("\n") < 25 < log_lines, "printed more than the error excerpt"
