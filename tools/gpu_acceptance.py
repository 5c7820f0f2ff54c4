"""The first hour on a borrowed GPU host, as one script (run by tools/gpu_acceptance.sh).

    tools/gpu_acceptance.sh OUTDIR             # on the GPU host: everything, < 8 min
    tools/gpu_acceptance.sh --dry-run OUTDIR   # anywhere: what needs no GPU (the gate)
    tools/gpu_acceptance.sh --part kernels OUTDIR  # steps 1 to 3 (PARTS)

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
4. experiments/inference.py at the GPU settings of experiments/gpt2_inference.bzl
   (GPT-2 124M, bf16, contexts 256 to 4,096, batches 1 and 8): every GPT-2 class
   prefills and decodes through its own KV cache, the classes interleaved point by
   point; tokens/s, ms per token, cache bytes and the ratios to GPT2 (the recorded
   run is `bazel run --config=h100 //experiments:gpt2_inference`);
5. host syncs: 50 training iterations of GPT-2 124M (eager, AdamW) under
   `torch.cuda.set_sync_debug_mode("warn")`, counting the syncs torch reports
   per log interval (at most one: the read of the interval's losses), with the
   telemetry sampler's gpu/* means in the records;
6. GPT-2 124M training throughput (bf16, torch.compile, the h100 profile's
   batch and GPU settings) on the Shakespeare tokens carried in
   tools/gpu_acceptance/shakespeare (experiments/bench_train.py's build):
   tokens/s and MFU of the loop before the change (`old_train_iter`:
   synchronize and `.item()` per micro-batch) and of the trainer's loop (one
   read per log interval), side by side.

Writes OUTDIR/results.json, steps.csv and summary.md (atomically), beside
each step's own output. --dry-run compiles for --arch (default sm_90), checks
the arguments, reads the carried tokens, collects the GPU tests without
running them and parses the benchmark's arguments, and runs steps 4 to 6 on
the CPU at tiny size (the syncs counted are the trainer's host reads, by a
host clock in place of CUDA events); it measures nothing and says so in
summary.md.

--part picks the steps of one part (PARTS): `kernels` (1 to 3: nvcc, the
kernel sources, the GPU tests) or `models` (4 to 6 and the tokens' check: the
trainer and the models). The gate dry-runs each part in a test of its own, so
an edit of the trainer reruns the models' steps and not the compile.
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
TRAIN_WARMUP, TRAIN_ITERS = 3, 10  # TRAIN_ITERS: one read per arm, the h100 log interval
INFERENCE_BZL = ROOT / "experiments/gpt2_inference.bzl"  # its "cuda" entry: 124M, bf16
SYNC_ITERS, SYNC_LOG_INTERVAL = 50, 10
DRY_SYNC_ITERS, DRY_SYNC_LOG_INTERVAL = 10, 2  # the same five intervals, at a fifth of the CPU
BUDGET_S = 480  # the whole run on an H100 (issue 23)
SYNC_WARNING = "called a synchronizing CUDA operation"  # torch's text in sync debug mode
# The dry run's model: the cpu profile's trunk, smaller, on the carried BPE tokens.
DRY_PROFILE = {"block_size": 32, "dims": {"n_layer": 2, "n_head": 2, "n_embd": 64}}
DRY_TRAIN = {"batch_size": 2}

# --part: the steps each part runs, by the names Steps records.
PARTS = {
    "kernels": ("compile", "gpu tests", "bench arguments", "decode benchmark"),
    "models": ("data", "gpt2 inference", "host syncs", "gpt2 training"),
}
PARTS["all"] = PARTS["kernels"] + PARTS["models"]


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
    """Runs the named steps of `names`, recording status and wall time; a failure
    does not stop the rest, and a step not in `names` does not run. A step that
    is in no part (PARTS) is refused, so a new step cannot be skipped unseen."""

    def __init__(self, names):
        self.names = names
        self.rows = []

    def __call__(self, name, fn):
        if name not in PARTS["all"]:
            raise AcceptanceError(f"step {name!r} is in no part of PARTS; add it to one")
        if name not in self.names:
            return
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


def bench_arguments():
    """The decode benchmark's arguments, parsed as the GPU run's benchmark parses them."""
    from kernels import bench_decode

    return str(vars(bench_decode.parse_args(BENCH_ARGS)))


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


def carried_profile(dry_run, **train):
    """The training steps' profile: h100 on the carried Shakespeare, or a tiny CPU one.

    `train` changes its TrainConfig (experiments/train_config.py)."""
    import dataclasses

    os.environ["KNLP_DATA_DIR"] = str(DATA.parent)
    from experiments.profiles import resolve

    base = resolve("cpu") if dry_run else resolve(TRAIN_PROFILE)
    top = {"dataset": "shakespeare", **(DRY_PROFILE if dry_run else {})}
    train = {**(DRY_TRAIN if dry_run else {}), **train}
    block = top.get("block_size", base.block_size)
    config = dataclasses.replace(base.train, tokens_per_sample=block, **train)
    return dataclasses.replace(base, train=config, **top)


def inference_step(out_dir, dry_run, extra):
    """experiments/inference.py: every GPT-2 class at 124M on the GPU (tiny on the CPU)."""
    import torch

    from experiments import inference

    d = bzl_value(INFERENCE_BZL, "GPT2_INFERENCE")["cuda"]  # the dry run reads it too
    if dry_run:
        args = dict(size="tiny", contexts=(16,), batches=(1, 2), decode_tokens=2, device="cpu")
    else:
        args = dict(
            size=d["size"],
            contexts=tuple(d["contexts"]),
            batches=tuple(d["batches"]),
            decode_tokens=d["decode_tokens"],
            device="cuda",
            dtype=getattr(torch, d["dtype"]),
        )
    points = inference.measure_all(**args)
    rows = inference.ratios(points)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"measured": not dry_run, "declared": d, "points": points, "ratios": rows}
    atomic_write_text(out_dir / "inference.json", json.dumps(record, indent=2) + "\n")
    extra["inference_table"] = inference.markdown(points, rows)
    top = max(p["context"] for p in points), max(p["batch"] for p in points)
    at_top = [r for r in rows if (r["context"], r["batch"]) == top and r["class"] != "GPT2"]
    best = max(at_top, key=lambda r: r["speedup"])
    return (
        f"{len(points)} points of {len({p['class'] for p in points})} classes; at context "
        f"{top[0]}, batch {top[1]}: fastest {best['class']} x{best['speedup']:.2f} GPT2's "
        f"decode tokens/s, cache /{best['cache_reduction']:.1f}"
    )


class SyncMarks:
    """A trainer hook: how many host syncs had been reported when each iteration ended."""

    def __init__(self, caught):
        self.caught, self.at = caught, []

    def after_step(self, it):
        self.at.append(sum(SYNC_WARNING in str(w.message) for w in self.caught))


def syncs_per_interval(marks, log_interval):
    """Syncs in each log interval: from the end of the last one to the end of its last iteration.

    Interval k > 0 holds the host read of interval k - 1's records (it comes
    right after that interval's last iteration); the read of the last
    interval and the final evaluation come after the marks and are not counted.
    """
    ends = [marks[i] for i in range(log_interval - 1, len(marks), log_interval)]
    return [b - a for a, b in zip([0] + ends[:-1], ends, strict=True)]


class HostReadClock:
    """The dry run's stand-in for CUDA events: host marks, and each read reported as a sync."""

    @staticmethod
    def mark():
        return time.perf_counter()

    @staticmethod
    def ms(start, end):
        return 1000 * (end - start)

    @staticmethod
    def read(values):
        import warnings

        warnings.warn(f"{SYNC_WARNING} (dry run: the trainer's host read)", stacklevel=2)
        return values.tolist()


def host_sync_step(out_dir, dry_run):
    """SYNC_ITERS iterations under sync debug mode; at most one sync per log interval.

    The dry run has the same number of intervals, shorter (DRY_SYNC_*)."""
    import warnings

    import torch

    from experiments import bench_train, telemetry

    device = "cpu" if dry_run else "cuda"
    iters, interval = (
        (DRY_SYNC_ITERS, DRY_SYNC_LOG_INTERVAL) if dry_run else (SYNC_ITERS, SYNC_LOG_INTERVAL)
    )
    profile = carried_profile(
        dry_run,
        batch_size=2 if dry_run else 4,
        grad_accum=2,
        compile=False,
        max_iters=iters,
        log_interval=interval,
        eval_interval=0,
        eval_iters=1,
        warmup_iters=5,
        checkpoint_interval=0,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    sampler = telemetry.make_sampler(device, interval_s=0.2, log=lines.append)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        marks = SyncMarks(caught)
        built, tr = bench_train.build_trainer(
            0,
            profile,
            device,
            hooks=[marks],
            sampler=sampler,
            metrics_path=str(out_dir / "metrics.jsonl"),
        )
        # AdamWSPAM's spike test reads the gradient norm every step by design; the
        # loop is what is checked here, so the optimizer is plain AdamW.
        fused = {} if dry_run else {"fused": True}
        tr.optimizer = torch.optim.AdamW(tr.raw_model.parameters(), lr=profile.train.lr, **fused)
        if dry_run:
            tr._clock = HostReadClock
        else:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            tr.fit()
        finally:
            if not dry_run:
                torch.cuda.set_sync_debug_mode("default")
    counts = syncs_per_interval(marks.at, interval)
    where = sorted({f"{w.filename}:{w.lineno}" for w in caught if SYNC_WARNING in str(w.message)})
    records = [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if r["kind"] == "train"][-1]
    gpu = {k: v for k, v in last.items() if k.startswith(("gpu/", "cpu/"))}
    result = {"syncs_per_interval": counts, "where": where, "telemetry": gpu, "notes": lines}
    atomic_write_text(out_dir / "syncs.json", json.dumps(result, indent=2) + "\n")
    if len(counts) != iters // interval or max(counts) > 1:
        raise RuntimeError(f"host syncs per log interval {counts} (at most 1 each), at {where}")
    telemetry_note = ", ".join(f"{k} {v:.1f}" for k, v in gpu.items()) or "; ".join(lines)
    return f"host syncs per log interval {counts}; telemetry: {telemetry_note}"


def old_train_iter(tr, it):
    """Trainer._train_iter as it was before the loop change, kept for the MFU comparison only.

    It synchronizes after every forward and backward and reads each micro-batch's
    loss with .item(), so the host waits for the GPU once per micro-batch.
    """
    import torch

    from experiments.trainer import _loss_of
    from pruning.optimizers import optimizer_step

    cfg = tr.cfg
    sync = tr.device.type == "cuda"
    t0 = time.perf_counter()
    total = 0.0
    for _ in range(cfg.grad_accum):
        x, y = tr.get_batch("train", tr.gen)
        with tr.autocast():
            loss = _loss_of(tr.model(x, y)) / cfg.grad_accum
        if sync:
            torch.cuda.synchronize()
        loss.backward()
        if sync:
            torch.cuda.synchronize()
        total += loss.detach().float().item()
    optimizer_step(tr.optimizer, tr.raw_model.parameters(), cfg.grad_clip)
    tr.optimizer.zero_grad(set_to_none=True)
    if sync:
        torch.cuda.synchronize()
    return {"loss": total, "iter_s": time.perf_counter() - t0}


def loop_mfu_step(out_dir, dry_run, extra):
    """Tokens/s and MFU of the old and the new loop on one compiled model, side by side."""
    import torch

    from experiments import bench_train

    device = "cpu" if dry_run else "cuda"
    profile = carried_profile(dry_run)
    built, tr = bench_train.build_trainer(0, profile, device)
    iters = 3 if dry_run else TRAIN_ITERS

    def sync():
        if not dry_run:
            torch.cuda.synchronize()

    def old(n):
        for i in range(n):
            old_train_iter(tr, i)

    def new(n):
        tr._read([(i, 0.0, tr._train_iter(i)) for i in range(n)])  # one read, as fit()'s

    def seconds(loop):
        sync()
        t0 = time.perf_counter()
        loop(iters)
        sync()
        return time.perf_counter() - t0

    new(1 if dry_run else TRAIN_WARMUP)  # compiles the model
    old(1)
    gpu = None if dry_run else torch.cuda.get_device_name()
    peak = bench_train.peak_for(gpu)
    flops = bench_train.flops_per_token(built.model)
    arms = {}
    for name, loop in (("before", old), ("after", new)):
        rate = tr.tokens_per_iter * iters / seconds(loop)
        arms[name] = {"tokens_per_s": rate, "mfu": flops * rate / (peak * 1e12) if peak else None}
    r = {
        "measured": not dry_run,
        "device": gpu,
        "peak_tflops": peak,
        "flops_per_token": flops,
        "tokens_per_iter": tr.tokens_per_iter,
        "iters": iters,
        "compiled": tr.compiled,
        "optimizer": built.built["optimizer"],
        "gpu_runtime": built.built["gpu_runtime"],
        **arms,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "train.json", json.dumps(r, indent=2) + "\n")
    extra["loop_mfu"] = r

    def fmt(a):
        mfu = f"MFU {a['mfu']:.1%}" if a["mfu"] is not None else "MFU n/a (no peak)"
        return f"{a['tokens_per_s']:,.0f} tokens/s, {mfu}"

    return f"before: {fmt(arms['before'])}; after: {fmt(arms['after'])}"


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
        f"Architecture {arch}; {extra.get('device', 'no GPU used')}. All steps took "
        f"{extra['total_seconds']} s (budget on an H100: {BUDGET_S} s)."
        + ("" if args.part == "all" else f" Only the {args.part} part's steps ran (--part)."),
        "",
        "| step | status | seconds | detail |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {r['step']} | {r['status']} | {r['seconds']} | {r['detail']} |" for r in steps]
    table = extra.get("bench_table")
    if table:
        lines += ["", "## Decode benchmark", "", "```", table.rstrip(), "```"]
    loop = extra.get("loop_mfu")
    if loop:
        lines += ["", "## Training loop: before and after", ""]
        lines += ["| loop | tokens/s | MFU |", "|---|---:|---:|"]
        for name in ("before", "after"):
            a = loop[name]
            mfu = f"{a['mfu']:.1%}" if a["mfu"] is not None else "n/a"
            lines.append(f"| {name} | {a['tokens_per_s']:,.0f} | {mfu} |")
        lines += ["", f"Optimizer {loop['optimizer']}, GPU settings {loop['gpu_runtime']}."]
    table = extra.get("inference_table")
    if table:
        lines += ["", "## Inference per GPT-2 class (x: against GPT2)", "", table.rstrip()]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path, help="where results go (created; must be empty or new)")
    p.add_argument("--dry-run", action="store_true", help="only what needs no GPU")
    p.add_argument("--arch", help="CUDA arch to compile (default: the GPU's; sm_90 in a dry run)")
    p.add_argument("--part", choices=sorted(PARTS), default="all", help="the steps to run")
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
    steps = Steps(PARTS[args.part])
    started = time.monotonic()
    steps("data", lambda: json.dumps(check_data()))
    steps("compile", lambda: compile_step(arch, lib_dir, log))
    steps("gpu tests", lambda: pytest_step(gpu_test_files(), env, log, args.dry_run))
    bench_out = out / "bench_decode"
    if args.dry_run:
        steps("bench arguments", bench_arguments)
        steps("gpt2 inference", lambda: inference_step(out / "inference", True, extra))
        steps("host syncs", lambda: host_sync_step(out / "syncs", True))
        steps("gpt2 training", lambda: loop_mfu_step(out / "train", True, extra))
    else:
        bench_cmd = [sys.executable, "-c", BENCH_CODE, str(bench_out), *BENCH_ARGS]

        def bench():
            if run(bench_cmd, log, env=env, timeout=240) != 0:
                raise RuntimeError(f"bench_decode failed; see {log}")
            extra["bench_table"] = (bench_out / "table.txt").read_text()
            return f"{bench_out}/results.csv"

        steps("decode benchmark", bench)
        steps("gpt2 inference", lambda: inference_step(out / "inference", False, extra))
        steps("host syncs", lambda: host_sync_step(out / "syncs", False))
        steps("gpt2 training", lambda: loop_mfu_step(out / "train", False, extra))
    extra["total_seconds"] = round(time.monotonic() - started, 1)
    result = {
        "dry_run": args.dry_run,
        "part": args.part,
        "arch": arch,
        "steps": steps.rows,
        **extra,
    }
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
