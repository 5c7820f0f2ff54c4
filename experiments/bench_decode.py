"""The decode-bandwidth run: kernels/bench_decode.py's benchmark, written as a run directory.

    bazel run //experiments:bench_decode --config=cuda            # on a GPU machine
    bazel run //experiments:bench_decode --config=cuda -- --batches 1 8 --contexts 8192
    bazel run //experiments:bench_decode -- --cpu-smoke           # CPU plumbing check only

What is timed, and how, is kernels/bench_decode.py's (the flags are its
own). This target runs it and writes, every file atomically through
experiments/results.py, to --out (default
results/bench_decode/<UTC time>-<cuda|rocm|cpu> in the workspace):
manifest.json (the run record every run target writes), results.json,
results.csv, table.txt, decode_bandwidth.png and, last, summary.json: the
rows, the device, the copy bandwidth and `measured`, false for --cpu-smoke,
whose numbers are the CPU reference at toy sizes and measure nothing.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import torch

from experiments import results
from kernels import bench_decode as bench

EXPERIMENT = "bench_decode"


def device_kind(cpu_smoke: bool) -> str:
    """cpu (the smoke test), rocm or cuda: the last part of the default run id."""
    if cpu_smoke:
        return "cpu"
    return "rocm" if getattr(torch.version, "hip", None) else "cuda"


def default_out(kind: str) -> Path:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(results.workspace_dir()) / "results" / EXPERIMENT / f"{stamp}-{kind}"


def summary(result: dict, run_id: str, measured: bool) -> dict:
    """summary.json: experiments/summary.py's top-level keys, the rows as `runs`."""
    return {
        "schema": results.SCHEMA,
        "experiment": EXPERIMENT,
        "run_id": run_id,
        "complete": True,
        "measured": measured,
        "device": result["device"],
        "copy_gbps": result["copy_gbps"],
        "metric": "contig_gbps",
        "metric_label": "knlp decode GB/s (contiguous cache)",
        "lower_is_better": False,
        "unigram_entropy": None,
        "steps": [],
        "runs": result["rows"],
        "checks": [],
    }


def write_outputs(result: dict, out: Path, manifest: dict, measured: bool) -> None:
    """Every file of the run directory `out`; summary.json last, once the rest is there."""
    results.write_manifest(str(out), manifest)
    results.atomic_write_json(str(out / "results.json"), result)
    results.write_csv(str(out / "results.csv"), list(result["rows"][0]), result["rows"])
    results.atomic_write_text(str(out / "table.txt"), bench.table(result) + "\n")
    results.atomic_write_bytes(str(out / "decode_bandwidth.png"), bench.plot(result))
    results.atomic_write_json(str(out / "summary.json"), summary(result, out.name, measured))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = bench.parse_args(argv)
    result = bench.run(args)
    out = args.out or default_out(device_kind(args.cpu_smoke))
    config = {k: v for k, v in vars(args).items() if k != "out"}
    device = "cpu" if args.cpu_smoke else "cuda"
    manifest = results.build_manifest(
        EXPERIMENT, out.name, results.run_target(EXPERIMENT), config, {}, device, argv=argv
    )
    write_outputs(result, out, manifest, measured=not args.cpu_smoke)
    print(bench.table(result))
    print(
        f"wrote {out}: manifest.json, results.json, results.csv, table.txt, "
        "decode_bandwidth.png, summary.json"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(results.exit_on_results_error(main))
    except bench.BenchError as e:
        print(f"bench_decode: {e}", file=sys.stderr)
        sys.exit(2)
