"""Fine-grained paper targets: one genrule per table and per figure.

Each target reads only its own data set's files, so editing one file under
paper/data/<set>/ regenerates that set's .tex (or figure) and the PDF, and
nothing else.
"""

def paper_tex(name, dataset, srcs, table = True):
    """generated/<dataset>_macros.tex and _table.tex (or <dataset>.tex alone) by texgen.py.

    Args:
      name: the target name.
      dataset: a data set texgen.py knows (its DATASETS).
      srcs: the data set's files, usually glob(["data/<dataset>/*"]).
      table: whether the data set has a table besides its macros.
    """
    main = "generated/%s%s.tex" % (dataset, "_macros" if table else "")
    outs = [main]
    cmd = "$(location //paper/render:texgen) %s --macros $(location %s)" % (dataset, main)
    if table:
        outs.append("generated/%s_table.tex" % dataset)
        cmd += " --table $(location generated/%s_table.tex)" % dataset
    native.genrule(
        name = name,
        srcs = srcs,
        outs = outs,
        cmd = cmd + " $(SRCS)",
        tools = ["//paper/render:texgen"],
        message = "Generating %s's LaTeX" % dataset,
    )

def paper_figure(name, figure, srcs):
    """figures/<figure>.pdf from `srcs` by figures.py.

    Args:
      name: the target name.
      figure: a figure figures.py knows (its FIGURES).
      srcs: the data set's files.
    """
    native.genrule(
        name = name,
        srcs = srcs,
        outs = ["figures/%s.pdf" % figure],
        cmd = "$(location //paper/render:figures) %s --out $@ $(SRCS)" % figure,
        tools = ["//paper/render:figures"],
        message = "Drawing figure %s" % figure,
    )
