"""What every measurement program shares: its command line and its output.

A measurement program runs on the GPU host in the serving environment (the
fork wheels installed by the build stage) and writes one JSON record per line
to --out, atomically: `{"metric": name, "value": number, ...}`. The run stage
copies the records into its metrics.jsonl, where the gates read them.
"""

import argparse
from pathlib import Path

from experiments.results import atomic_write_text, dumps


def parser(doc):
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="JSONL file to write")
    p.add_argument("--seed", type=int, default=0)
    return p


def write_records(path, records):
    atomic_write_text(str(path), "".join(dumps(r) + "\n" for r in records))


def rel_err(out, ref):
    """||out - ref|| / ||ref|| in float32."""
    out, ref = out.float(), ref.float()
    return float((out - ref).norm() / ref.norm())
