"""The decode-bandwidth benchmark's arguments (kernels/bench_decode.py's flags) per device.

Literals only (tools/bazel/bzl_data.py). On a CPU profile the benchmark runs
its CPU smoke check at toy sizes, whose numbers measure nothing (`measured`
false); on a GPU profile, the full sweep (kernels/bench_decode.py's defaults).
"""

BENCH_DECODE = {
    "cpu": ["--cpu-smoke", "--batches", "1", "4", "--contexts", "256", "1024", "--iters", "5"],
    "cuda": [],
}
