"""The paper's per-data-set targets, discovered from paper/data/*/manifest.json.

Each data set gets its own LaTeX and figure genrule, whose inputs are only that
set's files, so importing one run regenerates its table, macros and figure,
the index (datasets.tex and the provenance appendix, which read every
manifest) and the PDF, and nothing else. Which renderer a set needs is read
from its manifest's `experiment` by the programs, not declared here.
"""

def paper_dataset(name):
    """`<name>_tex` (generated/<name>_macros.tex, _table.tex) and `<name>_figure` (figures/<name>.pdf).

    Args:
      name: the data set, a directory under paper/data/.
    """
    srcs = native.glob(["data/%s/*" % name])
    macros = "generated/%s_macros.tex" % name
    table = "generated/%s_table.tex" % name
    native.genrule(
        name = name + "_tex",
        srcs = srcs,
        outs = [
            macros,
            table,
        ],
        cmd = "$(location //paper/render:texgen) --set %s --macros $(location %s) --table $(location %s) $(SRCS)" % (name, macros, table),
        tools = ["//paper/render:texgen"],
        message = "Generating %s's LaTeX" % name,
    )
    native.genrule(
        name = name + "_figure",
        srcs = srcs,
        outs = ["figures/%s.pdf" % name],
        cmd = "$(location //paper/render:figures) %s --out $@ $(SRCS)" % name,
        tools = ["//paper/render:figures"],
        message = "Drawing %s's figure" % name,
    )
