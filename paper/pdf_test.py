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
# One figure per data set (paper/BUILD.bazel passes their names); a plain pytest
# run finds the sets the same way BUILD does, from data/<set>/manifest.json.
SETS = " ".join(p.parent.name for p in Path("paper/data").glob("*/manifest.json"))
FIGURES = os.environ.get("KNLP_PAPER_FIGURES", SETS).split()


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


def unresolved_in_text(text):
    """Marks of unresolved references (??) and citations ([?]) in the PDF's text."""
    return [mark for mark in ("??", "[?]") if mark in text]


def undefined_in_log(log):
    """Log lines about undefined references or citations, or labels still changing."""
    return [
        line
        for line in log.splitlines()
        if re.search(r"(Reference|Citation) .* undefined|There were undefined", line)
        or "Label(s) may have changed" in line
    ]


def missing_figures(log, figures):
    """Figures of `figures` that the log does not show pdfTeX including."""
    return [f for f in figures if not re.search(rf"<figures/{f}\.pdf, id=", log)]


def overfull_beyond(log, limit=OVERFULL_LIMIT_PT):
    widths = [float(w) for w in re.findall(r"Overfull \\[hv]box \(([\d.]+)pt too", log)]
    return [w for w in widths if w > limit]


def test_no_unresolved_references_in_text(text):
    assert not unresolved_in_text(text), "unresolved reference or citation in the PDF text"


def test_text_has_the_sections(text):
    # IEEEtran sets headings in small caps, which pdftotext spaces out: "I NTRODUCTION".
    squeezed = re.sub(r"\s+", "", text).upper()
    for heading in (
        "INTRODUCTION",
        "RATIOABLATION",
        "PRUNINGMETHODSONGPT-2",
        "KV-CACHESIZE",
        "PRUNINGMATRIX",
        "DECODEKERNELBANDWIDTH",
        "REFERENCES",
        "APPENDIX",
    ):
        assert heading in squeezed, heading


def test_log_has_no_undefined_references_or_citations(log):
    bad = undefined_in_log(log)
    assert not bad, "\n".join(bad)


def test_every_figure_is_included(log, text):
    assert not missing_figures(log, FIGURES), f"not included: {missing_figures(log, FIGURES)}"
    assert text.count("Fig. ") >= len(FIGURES)


def test_no_overfull_boxes_beyond_limit(log):
    too_wide = overfull_beyond(log)
    assert not too_wide, f"overfull boxes wider than {OVERFULL_LIMIT_PT}pt: {too_wide}"


BROKEN = r"""\documentclass{article}
\usepackage{graphicx}
\begin{document}
See Section~\ref{nowhere} and \cite{nobody}.
\mbox{\rule{2\textwidth}{1pt}}
\end{document}
"""


def test_the_checks_catch_a_broken_document(tmp_path):
    """The checks above fail on a paper with the faults they look for."""
    from tools.bazel import latex_main

    tools = {t: os.environ.get("KNLP_" + t.upper()) or shutil.which(t) or "" for t in
             ("latexmk", "pdflatex", "bibtex")}  # fmt: skip
    if not all(tools.values()):
        pytest.fail(f"TeX tools missing ({tools}); run ./setup.sh")
    (tmp_path / "broken.tex").write_text(BROKEN)
    work = tmp_path / "build"
    work.mkdir()
    pdf, log_path = latex_main.build(
        "broken.tex", {"broken.tex": str(tmp_path / "broken.tex")}, tools, 0, work
    )
    log = log_path.read_text(errors="replace")
    tool = os.environ.get("KNLP_PDFTOTEXT") or shutil.which("pdftotext")
    text = subprocess.run([tool, str(pdf), "-"], capture_output=True, text=True).stdout
    assert unresolved_in_text(text) == ["??", "[?]"]
    assert any("nowhere" in line for line in undefined_in_log(log))
    assert any("nobody" in line for line in undefined_in_log(log))
    assert missing_figures(log, ["kv_cache"]) == ["kv_cache"]
    assert overfull_beyond(log), "a rule twice the text width must be overfull"


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


def test_prose_avoids_the_banned_word():
    assert "comprehensive" not in Path("paper/paper.tex").read_text().lower()


def test_prose_check_catches_a_typed_number():
    tex = "\\documentclass{x}\n\\begin{document}\nWe reach 42 ppl.\n\\label{fig:a1}\n"
    assert prose_digits(tex) == [(3, "We reach 42 ppl.")]
