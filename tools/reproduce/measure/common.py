"""What every measurement program shares: its command line and its output.

A measurement program runs on the GPU host in the serving environment (the
fork wheels installed by the build stage) and writes one JSON record per line
to --out, atomically: `{"metric": name, "value": number, ...}`. The run stage
copies the records into its metrics.jsonl, where the gates read them.
"""

import argparse
import json
import os
from pathlib import Path


def parser(doc):
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="JSONL file to write")
    p.add_argument("--seed", type=int, default=0)
    return p


def write_records(path, records):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    os.replace(tmp, path)


def rel_err(out, ref):
    """||out - ref|| / ||ref|| in float32."""
    out, ref = out.float(), ref.float()
    return float((out - ref).norm() / ref.norm())
