"""Checks the built paper: its text, its log, its figures and its prose.

Runs inside `bazel test //paper:pdf_test` on bazel-built paper/pdf.pdf and
paper/pdf.log; with a plain `pytest paper/pdf_test.py` it reads them from
bazel-bin/ (build //paper:pdf first). pdftotext is the one recorded by
@local_toolchains (KNLP_PDFTOTEXT).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

OVERFULL_LIMIT_PT = 1.0  # overfull boxes up to this are invisible in print
FIGURES = os.environ.get("KNLP_PAPER_FIGURES", "kv_cache pruning ratio_cpu").split()


def built(name):
    for candidate in (Path("paper") / name, Path("bazel-bin/paper") / name):
        if candidate.exists():
            return candidate
    pytest.skip(f"paper/{name} not built; run `bazel build //paper:pdf` first")


@pytest.fixture(scope="module")
def text():
    tool = os.environ.get("KNLP_PDFTOTEXT") or shutil.which("pdftotext")
    if not tool:
        pytest.fail("pdftotext not found; run ./setup.sh (poppler-utils)")
    proc = subprocess.run(
        [tool, "-layout", str(built("pdf.pdf")), "-"], capture_output=True, text=True, check=True
    )
    return proc.stdout


@pytest.fixture(scope="module")
def log():
    return built("pdf.log").read_text(errors="replace")


def test_no_unresolved_references_in_text(text):
    assert "??" not in text, "unresolved reference (??) in the PDF text"
    assert "[?]" not in text, "unresolved citation ([?]) in the PDF text"


def test_text_has_the_sections(text):
    # IEEEtran sets headings in small caps, which pdftotext spaces out: "I NTRODUCTION".
    squeezed = re.sub(r"\s+", "", text).upper()
    for heading in ("INTRODUCTION", "REFERENCES", "APPENDIX", "DECODEKERNELBANDWIDTH"):
        assert heading in squeezed, heading


def test_log_has_no_undefined_references_or_citations(log):
    bad = [
        line
        for line in log.splitlines()
        if re.search(r"(Reference|Citation) .* undefined|There were undefined", line)
        or "Label(s) may have changed" in line
    ]
    assert not bad, "\n".join(bad)


def test_every_figure_is_included(log, text):
    for fig in FIGURES:
        assert re.search(rf"<figures/{fig}\.pdf, id=", log), f"figures/{fig}.pdf not included"
    assert "File `" not in log or "not found" not in log
    assert text.count("Fig. ") >= len(FIGURES)


def test_no_overfull_boxes_beyond_limit(log):
    widths = [float(w) for w in re.findall(r"Overfull \\[hv]box \(([\d.]+)pt too", log)]
    too_wide = [w for w in widths if w > OVERFULL_LIMIT_PT]
    assert not too_wide, f"overfull boxes wider than {OVERFULL_LIMIT_PT}pt: {too_wide}"


def prose_digits(tex):
    """Digits typed into the prose of `tex`: (line number, line) pairs.

    Allowed: the preamble, comments, math displays, and the arguments of
    commands that take keys or file names rather than numbers.
    """
    body = tex.split("\\begin{document}", 1)[1]
    offset = tex[: tex.index("\\begin{document}")].count("\n")
    body = re.sub(r"(?<!\\)%.*", "", body)
    body = re.sub(
        r"\\begin\{(equation|align)\*?\}.*?\\end\{\1\*?\}",
        lambda m: "\n" * m.group(0).count("\n"),
        body,
        flags=re.S,
    )
    body = re.sub(
        r"\\(label|ref|cite|input|includegraphics|bibliography|bibliographystyle)"
        r"(\[[^\]]*\])?\{[^}]*\}",
        "",
        body,
    )
    return [
        (offset + i + 1, line.strip())
        for i, line in enumerate(body.splitlines())
        if re.search(r"\d", line)
    ]


def test_prose_types_no_numbers():
    tex = Path("paper/paper.tex").read_text()
    found = prose_digits(tex)
    assert not found, "numbers typed into paper.tex (use a macro from data): " + "; ".join(
        f"line {n}: {line}" for n, line in found
    )


def test_prose_check_catches_a_typed_number():
    tex = "\\documentclass{x}\n\\begin{document}\nWe reach 42 ppl.\n\\label{fig:a1}\n"
    assert prose_digits(tex) == [(3, "We reach 42 ppl.")]
