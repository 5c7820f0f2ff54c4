"""`latex_pdf`: a byte-reproducible PDF from LaTeX sources, with the host's TeX.

The TeX tools come from `@local_toolchains` (tools/bazel/toolchains.bzl), which
records each one's path, version and sha256. Their identities go into the
action's environment, so a machine with a different TeX never shares a cache
entry with this one. The action (tools/bazel/latex_main.py) copies the sources
into a fresh temporary directory, runs latexmk (pdflatex, bibtex and as many
passes as the cross-references need) with SOURCE_DATE_EPOCH and
FORCE_SOURCE_DATE=1, and fixes the PDF's trailer /ID and strips file names, so
the PDF is byte-identical across clean rebuilds and checkouts. The final TeX
log is an output too. On a LaTeX error the action prints only the error lines
of the log and a few lines after each.

    latex_pdf(
        name = "pdf",
        main = "paper.tex",
        srcs = ["refs.bib", ":figures", ":tables"],
        source_date_epoch = 1767225600,
    )

Outputs `<name>.pdf` and `<name>.log` (labels `:<name>.pdf`, `:<name>.log`). Each source is placed at its path
relative to the package (generated files too), so `\\input{gen/x.tex}` finds
the output of a rule writing `gen/x.tex`.
"""

load("@local_toolchains//:toolchains.bzl", "TOOLCHAINS")

TEX_TOOLS = ["latexmk", "pdflatex", "bibtex"]

def _relative(f, package):
    path = f.short_path
    if path.startswith("../"):  # a file of another repository
        return f.basename
    if package and path.startswith(package + "/"):
        return path[len(package) + 1:]
    return path

def _latex_pdf_impl(ctx):
    pdf = ctx.outputs.pdf
    log = ctx.outputs.log
    package = ctx.label.package
    files = [ctx.file.main] + ctx.files.srcs
    args = ctx.actions.args()
    args.add("--main", _relative(ctx.file.main, package))
    args.add("--pdf", pdf)
    args.add("--log", log)
    args.add("--source-date-epoch", str(ctx.attr.source_date_epoch))
    env = {}
    missing = []
    for tool in TEX_TOOLS:
        info = TOOLCHAINS.get(tool, {"available": False})
        if info.get("available"):
            args.add("--tool", "%s=%s" % (tool, info["path"]))
            env["KNLP_TOOL_" + tool.upper()] = info["identity"]
        else:
            missing.append(tool)
    for tool in missing:
        args.add("--missing", tool)
    seen = {}
    for f in files:
        rel = _relative(f, package)
        if rel in seen:
            if seen[rel] != f.path:
                fail("latex_pdf %s: two sources land at %s: %s and %s" % (ctx.label, rel, seen[rel], f.path))
            continue
        seen[rel] = f.path
        args.add("--src", "%s=%s" % (f.path, rel))
    ctx.actions.run(
        executable = ctx.executable._runner,
        arguments = [args],
        inputs = files,
        outputs = [pdf, log],
        env = env,
        mnemonic = "LatexPdf",
        progress_message = "LaTeX %s" % ctx.label,
    )
    return [DefaultInfo(files = depset([pdf]), runfiles = ctx.runfiles(files = [pdf, log])), OutputGroupInfo(log = depset([log]))]

latex_pdf = rule(
    implementation = _latex_pdf_impl,
    doc = "A PDF built by latexmk/pdflatex/bibtex in a clean directory, reproducibly.",
    attrs = {
        "main": attr.label(allow_single_file = [".tex"], mandatory = True, doc = "The top-level .tex file."),
        "srcs": attr.label_list(allow_files = True, doc = "Everything the main file reads: .tex, .bib, figures, generated tables."),
        "source_date_epoch": attr.int(mandatory = True, doc = "The date printed into the PDF, in seconds since 1970 (UTC)."),
        "_runner": attr.label(default = "//tools/bazel:latex_main", executable = True, cfg = "exec"),
    },
    outputs = {"log": "%{name}.log", "pdf": "%{name}.pdf"},
)

def latex_tool_identities():
    """The identities of the TeX tools, for rules that want them in their keys."""
    return {t: TOOLCHAINS.get(t, {}).get("identity", "missing") for t in TEX_TOOLS}
