"""latex_main: the error excerpt and the messages that do not need TeX to check."""

from tools.bazel import latex_main

LOG = (
    """This is pdfTeX, Version 3.141592653-2.6-1.40.24 (TeX Live 2022/Debian)
(./paper.tex
LaTeX2e <2022-11-01> patch level 1
"""
    + "\n".join(f"(/usr/share/texlive/file{i}.sty)" for i in range(200))
    + """
./paper.tex:12: Undefined control sequence.
l.12 We reach \\undefinedmacro
                             {} ppl.
The control sequence at the end of the top line
of your error message was never \\def'ed.

Here is how much of TeX's memory you used:
"""
)


def test_excerpt_keeps_the_error_and_a_few_lines_only():
    excerpt = latex_main.error_excerpt(LOG)
    assert excerpt.startswith("./paper.tex:12: Undefined control sequence.")
    assert "l.12 We reach \\undefinedmacro" in excerpt
    assert "file5.sty" not in excerpt
    assert len(excerpt.splitlines()) <= 1 + latex_main.CONTEXT_LINES


def test_excerpt_finds_bang_errors():
    log = "noise\n! LaTeX Error: File `x.sty' not found.\n\nType X to quit\nmore\nmore\nmore\n"
    assert latex_main.error_excerpt(log).startswith("! LaTeX Error: File `x.sty' not found.")


def test_no_error_no_excerpt():
    assert latex_main.error_excerpt("all fine\nOutput written on paper.pdf\n") == ""


def test_missing_tool_names_it_and_setup(capsys, tmp_path):
    code = latex_main.main(
        ["--main", "a.tex", "--pdf", str(tmp_path / "a.pdf"), "--log", str(tmp_path / "a.log"),
         "--source-date-epoch", "0", "--missing", "latexmk"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "latexmk" in out and "./setup.sh" in out


def test_tool_path_that_does_not_exist(capsys, tmp_path):
    code = latex_main.main(
        ["--main", "a.tex", "--pdf", str(tmp_path / "a.pdf"), "--log", str(tmp_path / "a.log"),
         "--source-date-epoch", "0", "--tool", "latexmk=/nonexistent/latexmk",
         "--tool", "pdflatex=/nonexistent/pdflatex", "--tool", "bibtex=/nonexistent/bibtex"]
    )  # fmt: skip
    assert code == 1
    assert "latexmk not found at /nonexistent/latexmk" in capsys.readouterr().out


def test_pretex_fixes_id_and_strips_file_names():
    code = latex_main.pretex("abc")
    assert "\\pdftrailerid{abc}" in code and "\\pdfsuppressptexinfo=-1" in code
