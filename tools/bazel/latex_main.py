"""The action behind `latex_pdf` (tools/bazel/latex.bzl): LaTeX in a clean directory.

    latex_main.py --main paper.tex --pdf out.pdf --log out.log \
        --source-date-epoch 1767225600 --tool latexmk=/usr/bin/latexmk ... \
        --src <file>=<path in the build directory> ...

Copies every source into a fresh temporary directory (so nothing of the
checkout's absolute path can reach the PDF), runs latexmk there with a fixed
environment, and copies the PDF and the final log out. Reproducibility comes
from three things: SOURCE_DATE_EPOCH with FORCE_SOURCE_DATE=1 (the dates),
\\pdftrailerid set to a hash of the sources (the /ID, which pdfTeX would
otherwise derive from the time and the output path), and
\\pdfsuppressptexinfo=-1 (the PTEX.* keys that name included files). On a
LaTeX error it prints only the `!` and `file:line:` error lines of the log,
each with a few lines after it.
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SETUP_HINT = "run ./setup.sh, then `bazel sync --configure` so Bazel finds it"
CONTEXT_LINES = 4
# `! Undefined control sequence.` or, with -file-line-error, `./paper.tex:12: ...`.
_ERROR = re.compile(r"^(!|[^:\s]+\.(tex|sty|cls|bbl|aux):\d+: )")


class LatexError(Exception):
    pass


def error_excerpt(log_text, context=CONTEXT_LINES, limit=8):
    """The error lines of a TeX log, each with `context` lines after it."""
    lines = log_text.splitlines()
    picked, shown = [], 0
    i = 0
    while i < len(lines) and shown < limit:
        if _ERROR.match(lines[i]):
            picked.append("\n".join(lines[i : i + 1 + context]))
            shown += 1
            i += 1 + context
        else:
            i += 1
    return "\n--\n".join(picked)


def pretex(sources_digest):
    """TeX run before the document: deterministic /ID, no file names in the PDF."""
    return r"\pdftrailerid{" + sources_digest + "}" r"\pdfsuppressptexinfo=-1" r"\pdfinfoomitdate=0"


def digest(workdir, rels):
    h = hashlib.sha256()
    for rel in sorted(rels):
        h.update(rel.encode() + b"\0" + (workdir / rel).read_bytes() + b"\0")
    return h.hexdigest()[:32]


def build(main, sources, tools, epoch, workdir):
    """Builds `main` in `workdir` from sources {dest: src}; returns (pdf, log) paths."""
    workdir = Path(workdir)
    for rel, src in sources.items():
        dest = workdir / rel
        if dest.resolve().is_relative_to(workdir.resolve()) is False:
            raise LatexError(f"source path {rel} leaves the build directory")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    home = workdir / ".home"
    home.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "TEXMFVAR": str(home / "texmf-var"),
        "TEXMFCONFIG": str(home / "texmf-config"),
        "SOURCE_DATE_EPOCH": str(epoch),
        "FORCE_SOURCE_DATE": "1",
        "TZ": "UTC",
        "LC_ALL": "C",
        "LANG": "C",
        "max_print_line": "10000",
    }
    jobname = Path(main).stem
    cmd = [
        tools["latexmk"],
        "-norc",
        "-pdf",
        "-interaction=nonstopmode",
        "-halt-on-error",
        "-file-line-error",
        f"-pretex={pretex(digest(workdir, sources))}",
        "-e",
        f"$pdflatex = q({tools['pdflatex']} %O %P); $bibtex = q({tools['bibtex']} %O %S);",
        main,
    ]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    log = workdir / f"{jobname}.log"
    log_text = log.read_text(errors="replace") if log.exists() else ""
    if proc.returncode != 0:
        excerpt = error_excerpt(log_text)
        blg = workdir / f"{jobname}.blg"
        if not excerpt and blg.exists():
            excerpt = "\n".join(
                line
                for line in blg.read_text(errors="replace").splitlines()
                if "error" in line.lower() or line.startswith("I ")
            )
        if not excerpt:
            excerpt = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise LatexError(f"LaTeX failed on {main}:\n{excerpt}")
    return workdir / f"{jobname}.pdf", log


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--main", required=True)
    parser.add_argument("--pdf", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--source-date-epoch", type=int, required=True)
    parser.add_argument("--tool", action="append", default=[], help="name=path")
    parser.add_argument("--missing", action="append", default=[])
    parser.add_argument("--src", action="append", default=[], help="file=relative path")
    parser.add_argument("--keep", help="build in this directory instead of a temporary one")
    args = parser.parse_args(argv)
    if args.missing:
        names = ", ".join(args.missing)
        print(f"latex_pdf: TeX tool(s) not found on this machine: {names}; {SETUP_HINT}.")
        return 1
    tools = dict(t.split("=", 1) for t in args.tool)
    for name in ("latexmk", "pdflatex", "bibtex"):
        if name not in tools or not os.path.exists(tools[name]):
            print(f"latex_pdf: {name} not found at {tools.get(name)}; {SETUP_HINT}.")
            return 1
    sources = {}
    for spec in args.src:
        src, rel = spec.split("=", 1)
        sources[rel] = src
    if args.main not in sources:
        print(f"latex_pdf: main file {args.main} is not among the sources")
        return 1
    with tempfile.TemporaryDirectory(prefix="latex-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        try:
            pdf, log = build(args.main, sources, tools, args.source_date_epoch, workdir)
        except LatexError as err:
            print(err)
            log = workdir / (Path(args.main).stem + ".log")
            if log.exists():
                shutil.copyfile(log, args.log)
            return 1
        shutil.copyfile(pdf, args.pdf)
        shutil.copyfile(log, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
