"""What every measurement program shares: its command line and its output.

A measurement program runs on the GPU host in the serving environment (the
fork wheels installed by the build stage) and writes one JSON record per line
to --out, atomically: `{"metric": name, "value": number, ..., "cell": {...}}`.
`--cell` is the stage set's decode cell (tools/reproduce/cell.py), and every
record carries it. The run stage copies the records into its metrics.jsonl,
where the gates read them.
"""

import argparse
from pathlib import Path

from experiments.results import atomic_write_text, dumps
from tools.reproduce import cell as cell_lib


def cell_arg(text):
    """argparse's reading of --cell: the cell, or its CellError as argparse's message."""
    try:
        return cell_lib.from_json(text)
    except cell_lib.CellError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def parser(doc):
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="JSONL file to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cell",
        required=True,
        type=cell_arg,
        help="the stage set's decode cell as JSON (tools/reproduce/stage_sets.bzl)",
    )
    return p


def write_records(path, records, cell):
    """Writes `records`, each with the decode cell it measured, atomically."""
    cell_lib.check(cell)
    atomic_write_text(str(path), "".join(dumps({**r, "cell": cell}) + "\n" for r in records))


def rel_err(out, ref):
    """||out - ref|| / ||ref|| in float32."""
    out, ref = out.float(), ref.float()
    return float((out - ref).norm() / ref.norm())
