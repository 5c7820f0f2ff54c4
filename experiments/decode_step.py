"""The decode-bandwidth measurement: kernels/bench_decode.py's benchmark as one run.

The "decode" kind of experiments/run_step.py (`measure`). What is timed, and
how, is kernels/bench_decode.py's; the declaration (bench_decode.bzl) holds
its arguments per device: the full sweep on a GPU profile, `--cpu-smoke` on
the CPU, whose numbers are the PyTorch reference at toy sizes and measure
nothing (`measured` false). Without a GPU on a GPU profile the run fails with
the benchmark's own message.
"""

from __future__ import annotations

from kernels import bench_decode as bench


def measure(spec, profile, device: str, data_root, log):
    """The "decode" kind: (values, checks): the benchmark's rows, device, copy bandwidth."""
    args = bench.parse_args(list(spec.declaration["args"]))
    result = bench.run(args)
    log(bench.table(result))
    return {**result, "measured": not args.cpu_smoke}, []
