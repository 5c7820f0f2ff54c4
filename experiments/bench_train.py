"""Training throughput benchmark: tokens/s per step, and model FLOPs utilization on a GPU.

  bazel run //experiments:bench_train                       # cpu profile, steps 0 and 8
  bazel run --config=cuda //experiments:bench_train -- --profile h100 --steps 0

For each RATIO step it builds the step's model and optimizer exactly as the
ablation's runs do (experiments/gpt2_step.py), runs --warmup untimed
iterations, then times --iters training iterations (forward, backward,
optimizer step, with a device synchronize) and prints the median tokens/s
and its ratio to the first step measured in the same run. On a GPU it also
prints model FLOPs utilization, MFU = (6 N + 12 L H Q T) x tokens/s / peak,
N the parameter count (nanoGPT's estimate), against the bf16 dense peak of
the GPU (PEAK_TFLOPS below); torch.compile follows the profile (--no-compile
turns it off), and so do the GPU settings (the profile's `gpu_runtime`,
experiments/gpu_runtime.py). Figures are medians over iterations, never
single runs. `build_trainer` is the build tools/gpu_acceptance.py times.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import torch

from experiments import gpt2_step, gpu_runtime
from experiments.ablations import registry
from experiments.profiles import resolve
from experiments.record import RunSpec
from experiments.trainer import Trainer

# bf16 dense tensor-core peak, TFLOP/s, by a substring of torch's device name.
PEAK_TFLOPS = {
    "H100": 989.0,  # SXM; the PCIe part is 756
    "H200": 989.0,
    "B200": 2250.0,
    "A10G": 125.0,  # the A10 sheet figure; the AWS A10G runs lower clocks, so MFU reads low
    "A100": 312.0,
    "W7900": 122.6,
}


def peak_for(name: str | None) -> float | None:
    if not name:
        return None
    for key, v in PEAK_TFLOPS.items():
        if key.lower() in name.lower():
            return v
    return None


def flops_per_token(model) -> float:
    cfg = model.config
    n = model.get_num_params()
    return 6 * n + 12 * cfg.n_layer * cfg.n_head * cfg.head_dim * cfg.block_size


def spec_for(step_id: int, profile) -> RunSpec:
    """A run of a RATIO step as experiments/defs.bzl declares it (seed 0)."""
    reg = registry.get()
    decl = reg.steps[step_id]
    return RunSpec(
        experiment="bench_train",
        step=f"step{step_id:02d}",
        run=f"step{step_id:02d}-s0",
        label=decl["doc"],
        seed=0,
        kind="gpt2",
        declaration={
            "id": step_id,
            "step": decl,
            "variant": reg.variants[decl["variant"]],
            "base": reg.base,
        },
        profile=profile.name,
        profile_declaration={},
        overrides={},
    )


def pick_device(profile, gpu: int | None) -> str:
    if profile.device == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"profile {profile.name} needs a GPU, and torch {torch.__version__} sees none; "
            "use --profile cpu, or build the CUDA/ROCm venv (bazel run --config=cuda ...)"
        )
    return f"cuda:{gpu}" if gpu is not None else "cuda"


def build_trainer(step_id, profile, device, compile_flag=None, **trainer_args):
    """(StepBuild, Trainer) of one RATIO step as a run of `profile` builds it.

    The profile's GPU settings are applied first, as experiments/run_step.py
    applies them; what was set is the StepBuild's `built["gpu_runtime"]`.
    `trainer_args` go to the Trainer (hooks, sampler, metrics_path).
    """
    if compile_flag is not None:
        profile = dataclasses.replace(
            profile, train=dataclasses.replace(profile.train, compile=compile_flag)
        )
    if profile.threads:  # as a run of the profile trains (experiments/run_step.py)
        torch.set_num_threads(profile.threads)
    runtime = gpu_runtime.apply(profile.gpu_runtime if device.startswith("cuda") else None)
    built = gpt2_step.build(spec_for(step_id, profile), profile, device, None)
    built.built["gpu_runtime"] = runtime
    tr = Trainer(
        model=built.model,
        optimizer=built.optimizer,
        get_batch=built.get_batch,
        cfg=built.train_cfg,
        log=lambda m: None,
        **trainer_args,
    )
    return built, tr


def bench_step(step_id, profile, device, compile_flag, warmup, iters) -> dict:
    built, tr = build_trainer(step_id, profile, device, compile_flag)
    t = profile.train
    tokens = t.batch_size * t.grad_accum * profile.block_size
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        tr._train_iter(i)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "step": step_id,
        "class": registry.step(step_id).class_name,
        "tokens_per_iter": tokens,
        "median_iter_s": med,
        "tokens_per_s": tokens / med,
        "flops_per_token": flops_per_token(built.model),
        "compiled": tr.compiled,
        "gpu_runtime": built.built["gpu_runtime"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", default="0,8")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--gpu", type=int, default=None)
    ap.add_argument("--compile", dest="compile", action="store_true", default=None)
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    args = ap.parse_args(argv)
    try:
        profile = resolve(args.profile)
        ids = [str(registry.step(part).id) for part in args.steps.split(",")]
        device = pick_device(profile, args.gpu)
    except (ValueError, RuntimeError) as e:  # registry.StepError is a ValueError
        print(f"bench_train: {e}", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    peak = peak_for(gpu)
    print(
        f"profile {profile.name}: {profile.train.batch_size}x{profile.train.grad_accum}x"
        f"{profile.block_size} tokens/iter, {profile.train.dtype}, device {gpu or 'cpu'}, "
        f"median of {args.iters} iterations after {args.warmup} warmup"
    )
    if not gpu:
        print("no GPU available: MFU not measured (run with a GPU profile on a GPU host)")
    base = None
    for sid in ids:
        r = bench_step(int(sid), profile, device, args.compile, args.warmup, args.iters)
        base = base or r["tokens_per_s"]
        line = (
            f"step {r['step']:2d} {r['class']:14s} {r['tokens_per_s']:12,.0f} tokens/s "
            f"(median iter {1000 * r['median_iter_s']:.0f} ms, x{r['tokens_per_s'] / base:.2f} "
            f"vs step {ids[0]}, compiled={r['compiled']})"
        )
        if peak:
            mfu = r["flops_per_token"] * r["tokens_per_s"] / (peak * 1e12)
            line += f", MFU {mfu:.1%} of {peak:.0f} TFLOP/s"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
