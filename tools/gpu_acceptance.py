"""The first hour on a borrowed GPU host, as one script (run by tools/gpu_acceptance.sh).

    tools/gpu_acceptance.sh OUTDIR             # on the GPU host: everything, < 8 min
    tools/gpu_acceptance.sh --dry-run OUTDIR   # anywhere: what needs no GPU (the gate)

The GPU hosts have python3 with torch (CUDA), nvcc, pytest and no Bazel, so
this runs from a plain checkout. Steps, each timed and recorded even when
one fails (the later ones still run):

1. compile kernels/decode_attention.cu into OUTDIR/lib/libdecode_cuda.so with
   nvcc and the flags of GPU_COMPILE_FLAGS in tools/bazel/gpu_targets.bzl (the
   table Bazel's gpu_shared_library uses), for the GPU's architecture;
2. pytest the test files of the test targets tagged "gpu" in the tree's
   BUILD.bazel files, against that library (KNLP_KERNELS_LIB_DIR);
3. kernels/bench_decode.py's benchmark, in its own process against that library
   (`write_bench`: OUTDIR/bench_decode/results.json, results.csv, table.txt), on
   the seed shapes (GPT-2 and Qwen2.5-7B, batch 1, 8, 32, context 2K to 32K):
   GB/s, fraction of the measured copy bandwidth and ratio to SDPA bf16, side by
   side (the recorded run is `bazel run //experiments:bench_decode`);
4. GPT-2 124M training throughput (bf16, torch.compile, the h100 profile's
   batch) on the Shakespeare tokens carried in tools/gpu_acceptance/shakespeare
   (experiments/bench_train.py's measurement): tokens/s and MFU.

Writes OUTDIR/results.json, steps.csv and summary.md (atomically), beside
each step's own output. --dry-run compiles for --arch (default sm_90), checks
the arguments, reads the carried tokens, collects the GPU tests without
running them and parses the benchmark's arguments; it measures nothing and
says so in summary.md.
"""

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from experiments.results import atomic_write_text, dumps, write_csv  # noqa: E402  (stdlib only)
from tools.bazel.bzl_data import bzl_value  # noqa: E402  (the project's .bzl reader)

TARGETS_BZL = ROOT / "tools/bazel/gpu_targets.bzl"
KERNEL_SOURCE = ROOT / "kernels/decode_attention.cu"
DATA = ROOT / "tools/gpu_acceptance/shakespeare"
GPT2_VOCAB = 50257
BENCH_ARGS = ["--batches", "1", "8", "32", "--contexts", "2048", "4096", "8192", "16384", "32768"]
TRAIN_PROFILE = "h100"  # its batch and block size; the dataset is the carried Shakespeare
TRAIN_WARMUP, TRAIN_ITERS = 3, 10


class AcceptanceError(Exception):
    """Bad arguments or a missing tool, with a message for the user."""


def cuda_archs():
    """Every CUDA architecture of GPU_TARGETS, in table order."""
    targets = bzl_value(TARGETS_BZL, "GPU_TARGETS")
    archs = [t["arch"] for t in targets.values() if t["vendor"] == "cuda"]
    return list(dict.fromkeys(archs))


def nvcc_command(arch, out):
    """nvcc's command line for the kernel library, from GPU_COMPILE_FLAGS."""
    table = bzl_value(TARGETS_BZL, "GPU_COMPILE_FLAGS")["cuda"]
    number = arch[len("sm_") :]
    arch_flags = [f.format(arch=arch, number=number) for f in table["arch_flags"]]
    return [find_nvcc(), *table["flags"], *arch_flags, "-o", str(out), str(KERNEL_SOURCE)]


def find_nvcc():
    for directory in (os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if directory and (Path(directory) / "bin/nvcc").exists():
            return str(Path(directory) / "bin/nvcc")
    found = shutil.which("nvcc")
    if not found:
        raise AcceptanceError("nvcc not found in $CUDA_PATH/bin, /usr/local/cuda/bin or PATH")
    return found


def gpu_test_files():
    """The srcs of every test target tagged "gpu" in the tree's BUILD.bazel files."""
    files = []
    for build in sorted(ROOT.glob("*/**/BUILD.bazel")):
        if build.relative_to(ROOT).parts[0].startswith(("bazel-", ".")):
            continue
        package = build.parent.relative_to(ROOT)
        for node in ast.walk(ast.parse(build.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "").endswith("_test")):
                continue
            kw = {k.arg: k.value for k in node.keywords}
            try:
                tags = ast.literal_eval(kw["tags"]) if "tags" in kw else []
                srcs = ast.literal_eval(kw["srcs"]) if "srcs" in kw else []
            except ValueError:
                continue  # computed values: not a plain gpu test
            if "gpu" in tags:
                files += [str(package / src) for src in srcs]
    if not files:
        raise AcceptanceError("no test target in the tree is tagged gpu")
    return files


def check_data():
    """Facts about the carried Shakespeare tokens, or AcceptanceError if they are unusable."""
    import numpy as np

    meta_path = DATA / "meta.json"
    if not meta_path.exists():
        raise AcceptanceError(f"{DATA} lacks meta.json (the carried tokens are missing)")
    meta = json.loads(meta_path.read_text())
    facts = {}
    for split in ("train", "val"):
        tokens = np.fromfile(DATA / f"{split}.bin", dtype=np.uint16)
        want = meta[f"{split}_tokens"]
        if len(tokens) != want:
            raise AcceptanceError(f"{DATA}/{split}.bin has {len(tokens)} tokens, meta.json {want}")
        if len(tokens) and int(tokens.max()) >= GPT2_VOCAB:
            raise AcceptanceError(f"{split}.bin holds token {int(tokens.max())} >= {GPT2_VOCAB}")
        facts[f"{split}_tokens"] = len(tokens)
    return facts


def run(cmd, log, env=None, timeout=None):
    """Runs cmd with output to `log` (appended); returns the exit status."""
    with open(log, "a") as f:
        f.write(f"$ {' '.join(map(str, cmd))}\n")
        f.flush()
        try:
            proc = subprocess.run(
                cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            f.write(f"timed out after {timeout} s\n")
            return 124
    return proc.returncode


class Steps:
    """Runs named steps, recording status and wall time; a failure does not stop the rest."""

    def __init__(self):
        self.rows = []

    def __call__(self, name, fn):
        t0 = time.monotonic()
        try:
            detail = fn() or ""
            status = "ok"
        except Exception as e:  # noqa: BLE001  (recorded, and the next step still runs)
            detail, status = f"{type(e).__name__}: {e}", "failed"
        self.rows.append(
            {"step": name, "status": status, "seconds": round(time.monotonic() - t0, 1),
             "detail": str(detail)}
        )  # fmt: skip
        print(f"[{status}] {name} ({self.rows[-1]['seconds']} s) {detail}", flush=True)
        return status == "ok"


def compile_step(arch, lib_dir, log):
    lib_dir.mkdir(parents=True, exist_ok=True)
    out = lib_dir / "libdecode_cuda.so"
    cmd = nvcc_command(arch, out)
    if run(cmd, log) != 0:
        raise RuntimeError(f"nvcc failed; see {log}")
    manifest = {"archs": [arch], "compiler": "gpu_acceptance nvcc", "vendor": "cuda"}
    atomic_write_text(lib_dir / "libdecode_cuda.archs.json", json.dumps(manifest) + "\n")
    return f"{out} ({arch})"


def pytest_step(files, env, log, collect_only):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    if collect_only:
        cmd.append("--collect-only")
    if run(cmd, log, env=env) != 0:
        raise RuntimeError(f"pytest failed; see {log}")
    return " ".join(files)


def train_step(out_dir):
    """GPT-2 124M, bf16, torch.compile, on the carried Shakespeare tokens."""
    import dataclasses

    import torch

    os.environ["KNLP_DATA_DIR"] = str(DATA.parent)
    from experiments import bench_train
    from experiments.profiles import resolve

    profile = dataclasses.replace(resolve(TRAIN_PROFILE), dataset="shakespeare")
    r = bench_train.bench_step(0, profile, "cuda", True, TRAIN_WARMUP, TRAIN_ITERS)
    gpu = torch.cuda.get_device_name()
    peak = bench_train.peak_for(gpu)
    r["device"], r["peak_tflops"] = gpu, peak
    r["mfu"] = r["flops_per_token"] * r["tokens_per_s"] / (peak * 1e12) if peak else None
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "train.json", json.dumps(r, indent=2) + "\n")
    mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a (no peak for this GPU)"
    return f"{r['tokens_per_s']:,.0f} tokens/s, MFU {mfu}"


# Runs write_bench in a fresh interpreter, so the benchmark loads the library just built.
BENCH_CODE = "import sys; from tools.gpu_acceptance import write_bench; write_bench(*sys.argv[1:])"


def write_bench(out_dir, *argv):
    """Runs kernels/bench_decode.py's benchmark with `argv` and writes its results.json
    (NaN as null), results.csv and table.txt into `out_dir`."""
    from kernels import bench_decode as bench

    result = bench.run(bench.parse_args(list(argv)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", dumps(result) + "\n")
    write_csv(str(out / "results.csv"), list(result["rows"][0]), result["rows"])
    atomic_write_text(out / "table.txt", bench.table(result) + "\n")


def summary(args, arch, steps, extra):
    lines = [
        "# GPU acceptance" + (" (DRY RUN: nothing was measured)" if args.dry_run else ""),
        "",
        f"Architecture {arch}; {extra.get('device', 'no GPU used')}.",
        "",
        "| step | status | seconds | detail |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {r['step']} | {r['status']} | {r['seconds']} | {r['detail']} |" for r in steps]
    table = extra.get("bench_table")
    if table:
        lines += ["", "## Decode benchmark", "", "```", table.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path, help="where results go (created; must be empty or new)")
    p.add_argument("--dry-run", action="store_true", help="only what needs no GPU")
    p.add_argument("--arch", help="CUDA arch to compile (default: the GPU's; sm_90 in a dry run)")
    args = p.parse_args(argv)
    archs = cuda_archs()
    if args.arch is not None and args.arch not in archs:
        p.error(f"--arch {args.arch} is not a CUDA GPU target's arch; accepted: {', '.join(archs)}")
    if args.outdir.exists() and (not args.outdir.is_dir() or any(args.outdir.iterdir())):
        p.error(f"OUTDIR {args.outdir} exists and is not an empty directory; accepted: a new path")
    return args


def main(argv=None):
    args = parse_args(argv)
    extra = {}
    if args.dry_run:
        arch = args.arch or "sm_90"
    else:
        import torch

        if not torch.cuda.is_available():
            raise AcceptanceError(
                f"no GPU visible to torch {torch.__version__}; run with --dry-run on a CPU host"
            )
        major, minor = torch.cuda.get_device_capability()
        arch = args.arch or f"sm_{major}{minor}"
        if arch not in cuda_archs():
            raise AcceptanceError(
                f"the GPU is {arch}, not in GPU_TARGETS; accepted: {', '.join(cuda_archs())}"
            )
        extra["device"] = torch.cuda.get_device_name()
    out = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    lib_dir = out / "lib"
    env = dict(os.environ, KNLP_KERNELS_LIB_DIR=str(lib_dir), PYTHONPATH=str(ROOT))
    steps = Steps()
    steps("data", lambda: json.dumps(check_data()))
    steps("compile", lambda: compile_step(arch, lib_dir, log))
    steps("gpu tests", lambda: pytest_step(gpu_test_files(), env, log, args.dry_run))
    bench_out = out / "bench_decode"
    if args.dry_run:
        from kernels import bench_decode

        steps("bench arguments", lambda: str(vars(bench_decode.parse_args(BENCH_ARGS))))
    else:
        bench_cmd = [sys.executable, "-c", BENCH_CODE, str(bench_out), *BENCH_ARGS]

        def bench():
            if run(bench_cmd, log, env=env, timeout=240) != 0:
                raise RuntimeError(f"bench_decode failed; see {log}")
            extra["bench_table"] = (bench_out / "table.txt").read_text()
            return f"{bench_out}/results.csv"

        steps("decode benchmark", bench)
        steps("gpt2 training", lambda: train_step(out / "train"))
    result = {"dry_run": args.dry_run, "arch": arch, "steps": steps.rows, **extra}
    atomic_write_text(out / "results.json", json.dumps(result, indent=2) + "\n")
    write_csv(str(out / "steps.csv"), ["step", "status", "seconds", "detail"], steps.rows)
    atomic_write_text(out / "summary.md", summary(args, arch, steps.rows, extra))
    failed = [r["step"] for r in steps.rows if r["status"] != "ok"]
    print(f"wrote {out}/summary.md; failed steps: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AcceptanceError as e:
        print(f"gpu_acceptance: {e}", file=sys.stderr)
        sys.exit(2)
