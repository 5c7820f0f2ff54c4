"""Benchmark: K16/V8 decode attention against copy bandwidth and torch SDPA on bf16 K/V.

The run target is //experiments:bench_decode (experiments/bench_decode.py),
which runs this benchmark and writes its run directory:

    bazel run //experiments:bench_decode --config=cuda            # on a GPU machine
    bazel run //experiments:bench_decode --config=cuda -- --batches 1 8 --contexts 8192
    bazel run //experiments:bench_decode -- --cpu-smoke           # CPU plumbing check only

For each head shape (Qwen2.5-7B: 28 q heads, 4 kv heads, head_dim 128; GPT-2:
12, 12, 64), batch and context it times, with CUDA events, the knlp kernel on
the contiguous and the paged (page 16) cache, and
torch.nn.functional.scaled_dot_product_attention on bf16 K and V in its
preferred [B, H, T, D] layout. Every timed call starts with a cold L2 (a
scrub buffer is overwritten before it, and a GPU sleep lets the host queue
it, so host overhead is not timed); figures are medians. Bytes are the
bytes each method must move at least (K, V, V scales, q, output, block
table), and bytes/s is compared with the device-to-device copy bandwidth
(read + write) measured in the same run.

Without a GPU `run` stops with a message, unless --cpu-smoke is given: that
runs the PyTorch reference at toy sizes, labelled as such everywhere, to
check the table, files and plot, and measures nothing about the kernels.
This module writes no file: the run record is experiments/'s.
"""

import argparse
import io
import math
import os
import statistics
from pathlib import Path

import torch

from kernels import ops, reference

MODELS = {"qwen2.5-7b": (28, 4, 128), "gpt2": (12, 12, 64)}
PAGE_SIZE = 16


class BenchError(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=sorted(MODELS), choices=sorted(MODELS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--contexts", nargs="+", type=int, default=[2048, 4096, 8192, 16384, 32768])
    p.add_argument("--iters", type=int, default=30, help="timed calls per measurement (median)")
    p.add_argument("--out", type=Path, help="output directory")
    p.add_argument(
        "--cpu-smoke", action="store_true", help="toy sizes on the CPU reference; no figures"
    )
    args = p.parse_args(argv)
    for b in args.batches:
        if b < 1:
            p.error(f"--batches: {b} is not a batch size (>= 1)")
    for t in args.contexts:
        if t < 1:
            p.error(f"--contexts: {t} is not a context length (>= 1)")
    if args.iters < 3:
        p.error(f"--iters {args.iters}: at least 3 for a median")
    return args


class Timer:
    """Median time of a GPU callable, each call after an L2 scrub, with CUDA events."""

    def __init__(self, device, iters):
        props = torch.cuda.get_device_properties(device)
        l2 = getattr(props, "L2_cache_size", 64 << 20) or (64 << 20)
        self.scrub = torch.empty(4 * l2, dtype=torch.uint8, device=device)
        self.iters = iters

    def __call__(self, fn):
        fn()  # warm up (and JIT/autotune, if any)
        torch.cuda.synchronize()
        times = []
        for _ in range(self.iters):
            self.scrub.fill_(1)
            # Keep the GPU busy while the host queues the timed call, so the
            # events measure GPU time, not Python and launch overhead.
            torch.cuda._sleep(1_000_000)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return statistics.median(times)


def copy_bandwidth(timer, device):
    """Device-to-device copy bandwidth (bytes read + written per second) of a 1 GiB buffer."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return 2 * src.numel() / timer(lambda: dst.copy_(src))


def cache_bytes(bsz, t, hq, hkv, d, paged):
    """Bytes decode must read and write at least, K16/V8 cache."""
    n = bsz * t * hkv
    table = bsz * math.ceil(t / PAGE_SIZE) * 4 if paged else 0
    return n * d * 2 + n * d + n * 4 + 2 * bsz * hq * d * 2 + bsz * 4 + table


def sdpa_bytes(bsz, t, hq, hkv, d):
    return 2 * bsz * t * hkv * d * 2 + 2 * bsz * hq * d * 2


def make_inputs(bsz, t, hq, hkv, d, device, paged):
    gen = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(bsz, hq, d, device=device, generator=gen).to(torch.bfloat16)
    if paged:
        per_seq = math.ceil(t / PAGE_SIZE)
        perm = torch.randperm(bsz * per_seq, device=device, generator=gen)
        table = perm.view(bsz, per_seq).to(torch.int32)
        shape = (bsz * per_seq, PAGE_SIZE, hkv, d)
    else:
        table = None
        shape = (bsz, t, hkv, d)
    k = torch.randn(shape, device=device, generator=gen).to(torch.bfloat16)
    v, scale = reference.quantize_v(
        torch.randn(shape, device=device, generator=gen).to(torch.bfloat16)
    )
    seq_lens = torch.full((bsz,), t, dtype=torch.int32, device=device)
    return q, k, v, scale.contiguous(), seq_lens, table


def time_knlp(timer, shape, device, paged):
    """Median seconds of one knlp decode call over a full cache of `shape`."""
    bsz, t, hq, hkv, d = shape
    q, k, v, s, lens, table = make_inputs(bsz, t, hq, hkv, d, device, paged)
    scale = ops.default_scale(d)
    return timer(lambda: torch.ops.knlp.decode_attention(q, k, v, s, lens, table, t, scale))


def time_sdpa(timer, shape, device):
    """Median seconds of torch SDPA on bf16 K/V in [B, H, T, D]."""
    bsz, t, hq, hkv, d = shape
    q = torch.randn(bsz, hq, 1, d, device=device).to(torch.bfloat16)
    k = torch.randn(bsz, hkv, t, d, device=device).to(torch.bfloat16)
    v = torch.randn(bsz, hkv, t, d, device=device).to(torch.bfloat16)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    return timer(lambda: sdpa(q, k, v, enable_gqa=True))


def measure(args, device):
    timer = Timer(device, args.iters)
    copy_bw = copy_bandwidth(timer, device)
    print(f"device: {torch.cuda.get_device_name(device)}; copy bandwidth {copy_bw / 1e9:.0f} GB/s")
    print(HEADER)
    rows = []
    for model in args.models:
        hq, hkv, d = MODELS[model]
        for bsz in args.batches:
            for t in args.contexts:
                shape = (bsz, t, hq, hkv, d)
                row = {"model": model, "batch": bsz, "context": t}
                for paged in (False, True):
                    sec = time_knlp(timer, shape, device, paged)
                    name = "paged" if paged else "contig"
                    row[f"{name}_us"] = sec * 1e6
                    row[f"{name}_gbps"] = cache_bytes(bsz, t, hq, hkv, d, paged) / sec / 1e9
                    torch.cuda.empty_cache()
                sec = time_sdpa(timer, shape, device)
                torch.cuda.empty_cache()
                row["sdpa_us"] = sec * 1e6
                row["sdpa_gbps"] = sdpa_bytes(bsz, t, hq, hkv, d) / sec / 1e9
                row["contig_copy_frac"] = row["contig_gbps"] * 1e9 / copy_bw
                row["paged_copy_frac"] = row["paged_gbps"] * 1e9 / copy_bw
                row["speedup_vs_sdpa"] = row["sdpa_us"] / row["contig_us"]
                rows.append(row)
                print(format_row(row), flush=True)
    cuda_backends = torch.backends.cuda
    return {
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        # SDPA picks among the enabled backends; which one ran is not reported by torch.
        "sdpa_backends_enabled": {
            "flash": cuda_backends.flash_sdp_enabled(),
            "mem_efficient": cuda_backends.mem_efficient_sdp_enabled(),
            "cudnn": cuda_backends.cudnn_sdp_enabled(),
            "math": cuda_backends.math_sdp_enabled(),
        },
        "copy_gbps": copy_bw / 1e9,
        "rows": rows,
    }


def measure_cpu_smoke(args):
    """Toy sizes through the CPU reference: checks the plumbing, measures nothing."""
    import time

    rows = []
    for model in args.models:
        hq, hkv, d = MODELS[model]
        for bsz in args.batches:
            for t in args.contexts:
                row = {"model": model, "batch": bsz, "context": t}
                for paged in (False, True):
                    q, k, v, s, lens, table = make_inputs(bsz, t, hq, hkv, d, "cpu", paged)
                    start = time.perf_counter()
                    torch.ops.knlp.decode_attention(
                        q, k, v, s, lens, table, t, ops.default_scale(d)
                    )
                    sec = time.perf_counter() - start
                    name = "paged" if paged else "contig"
                    row[f"{name}_us"] = sec * 1e6
                    row[f"{name}_gbps"] = cache_bytes(bsz, t, hq, hkv, d, paged) / sec / 1e9
                row.update(
                    sdpa_us=float("nan"), sdpa_gbps=float("nan"), speedup_vs_sdpa=float("nan")
                )
                row["contig_copy_frac"] = row["paged_copy_frac"] = float("nan")
                rows.append(row)
                print(format_row(row), flush=True)
    return {
        "device": "CPU SMOKE TEST (reference, toy sizes; not a measurement)",
        "copy_gbps": float("nan"),
        "rows": rows,
    }


HEADER = (
    f"{'model':<11} {'B':>3} {'T':>6} | {'knlp us':>9} {'GB/s':>6} {'%copy':>6} | "
    f"{'paged us':>9} {'%copy':>6} | {'SDPA us':>9} {'GB/s':>6} | {'speedup':>7}"
)


def format_row(r):
    return (
        f"{r['model']:<11} {r['batch']:>3} {r['context']:>6} | {r['contig_us']:>9.1f} "
        f"{r['contig_gbps']:>6.0f} {100 * r['contig_copy_frac']:>5.1f}% | {r['paged_us']:>9.1f} "
        f"{100 * r['paged_copy_frac']:>5.1f}% | {r['sdpa_us']:>9.1f} {r['sdpa_gbps']:>6.0f} | "
        f"{r['speedup_vs_sdpa']:>6.2f}x"
    )


def table(result):
    lines = [f"# {result['device']}; copy bandwidth {result['copy_gbps']:.0f} GB/s", HEADER]
    lines += [format_row(r) for r in result["rows"]]
    return "\n".join(lines)


def plot(result):
    os.environ.setdefault("MPLCONFIGDIR", os.environ.get("TEST_TMPDIR", "/tmp"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in result["rows"]})
    smoke = math.isnan(result["copy_gbps"])  # no copy bandwidth, no SDPA: plot raw GB/s
    fig, axes = plt.subplots(2, len(models), figsize=(6 * len(models), 8), squeeze=False)
    for col, model in enumerate(models):
        rows = [r for r in result["rows"] if r["model"] == model]
        top, bottom = axes[0][col], axes[1][col]
        for bsz in sorted({r["batch"] for r in rows}):
            sel = [r for r in rows if r["batch"] == bsz]
            ctx = [r["context"] for r in sel]
            if smoke:
                top.plot(ctx, [r["contig_gbps"] for r in sel], "o-", label=f"B={bsz}")
            else:
                top.plot(ctx, [100 * r["contig_copy_frac"] for r in sel], "o-", label=f"B={bsz}")
                bottom.plot(ctx, [r["speedup_vs_sdpa"] for r in sel], "o-", label=f"B={bsz}")
        top.set_title(f"{model}: knlp K16/V8 decode")
        if smoke:
            top.set_ylabel("GB/s (CPU reference, smoke test)")
            bottom.text(0.5, 0.5, "no SDPA comparison in the CPU smoke test", ha="center")
            bottom.set_axis_off()
        else:
            top.set_ylabel("% of device copy bandwidth")
            top.axhline(85, color="gray", ls="--", lw=0.8)
            bottom.set_ylabel("speedup over SDPA (bf16 K/V)")
            bottom.axhline(1.25, color="gray", ls="--", lw=0.8)
            bottom.set_xscale("log", base=2)
            bottom.set_xlabel("context (tokens)")
            bottom.legend()
        top.set_xscale("log", base=2)
        top.set_xlabel("context (tokens)")
        top.legend()
    fig.suptitle(result["device"])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=300, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def run(args):
    """The benchmark's result ({device, copy_gbps, rows, ...}): on the GPU, or the
    labelled CPU smoke test with --cpu-smoke; BenchError without a GPU."""
    if args.cpu_smoke:
        print("CPU SMOKE TEST: the PyTorch reference at the given (toy) sizes; no kernel is timed.")
        return measure_cpu_smoke(args)
    if not torch.cuda.is_available():
        raise BenchError(
            "bench_decode needs a CUDA or ROCm GPU, and torch here sees none "
            f"(torch {torch.__version__}, torch.cuda.is_available() is False). Run it on a GPU "
            "machine with `bazel run //experiments:bench_decode --config=cuda` (or "
            "--config=rocm), or pass --cpu-smoke for a labelled plumbing check."
        )
    return measure(args, torch.device("cuda"))
