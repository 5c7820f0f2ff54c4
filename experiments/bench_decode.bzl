"""The decode-bandwidth benchmark's arguments (kernels/bench_decode.py's flags) per device.

Literals only (tools/bazel/bzl_data.py). On a CPU profile the benchmark runs
its CPU smoke check, whose numbers measure nothing (`measured` false); on a GPU
profile, the full sweep.
"""

BENCH_DECODE = {
    "cpu": ["--cpu-smoke"],
    "cuda": [],
}
