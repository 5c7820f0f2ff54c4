"""The RATIO ablation: the 19 steps of experiments/ablations/steps.bzl, trained for real.

  bazel run //experiments:gpt2_ratio_ablation                      # cpu profile
  bazel run //experiments:gpt2_ratio_ablation -- --steps 0,5,8 --iters 50
  bazel run --config=cuda //experiments:gpt2_ratio_ablation -- --profile h100

Each step builds the model, optimizer and pruning the registry declares for
it, at the profile's size ("tiny" dims on the CPU, GPT-2 124M on the GPU
profiles), trains it on the profile's dataset and writes
results/gpt2_ratio_ablation/<run_id>/ (see experiments/README.md). A rerun
resumes at the first step without DONE.
"""

from __future__ import annotations

import argparse
import sys

from experiments import runner
from experiments.ablations import registry
from experiments.gpt2_common import build_gpt2_step, run_record, step_config
from experiments.profiles import parse_steps, resolve
from experiments.results import exit_on_results_error

EXPERIMENT = "gpt2_ratio_ablation"


def step_name(step_id: int) -> str:
    return f"step{int(step_id):02d}"


def make_specs(ids: list[str], profile, seed: int, compile_flag) -> list[runner.StepSpec]:
    specs = []
    for sid in ids:
        st = registry.step(sid)
        specs.append(
            runner.StepSpec(
                name=step_name(st.id),
                label=f"{st.variant}: {st.doc}",
                build=lambda device, st=st: build_gpt2_step(
                    st, profile, device, seed, compile_flag
                ),
            )
        )
    return specs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runner.add_common_args(ap)
    args = ap.parse_args(argv)
    try:
        profile = resolve(args.profile, args.iters, args.time)
        valid = [str(i) for i in registry.step_ids()]
        ids = parse_steps(args.steps, valid)
        device = runner.pick_device(profile.device, args.gpu, profile.gpus)
    except (ValueError, RuntimeError) as e:
        print(f"{EXPERIMENT}: {e}", file=sys.stderr)
        return 2
    if args.list:
        for sid in valid:
            st = registry.step(sid)
            cfg = step_config(st, profile)
            print(f"{step_name(sid)}  {st.class_name:16s} mlp {cfg.mlp_dim:5d}  {st.doc}")
        return 0
    compile_flag = args.compile
    config, train_meta = run_record(EXPERIMENT, profile, args.seed, compile_flag)
    specs = make_specs(ids, profile, args.seed, compile_flag)
    return runner.run_steps(EXPERIMENT, specs, args, config, train_meta, device)


if __name__ == "__main__":
    sys.exit(exit_on_results_error(main))
