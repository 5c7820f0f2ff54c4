"""The GPT-2 model-variant ablation: one run per variant prefix (B, RA, MLA, ... MLAKV2M).

  bazel run //experiments:gpt2_variants                         # cpu profile, all variants
  bazel run //experiments:gpt2_variants -- --steps B,MLA,MLAKV --iters 200

Each variant prefix of experiments/ablations/steps.bzl trains its class with
the prefix's options on the RATIO base (no step options), so the table
compares the attention and cache mechanisms alone: validation loss and
perplexity against measured KV-cache bytes per token. Results land in
results/gpt2_variants/<run_id>/ like the RATIO ablation's.
"""

from __future__ import annotations

import argparse
import sys

from experiments import runner
from experiments.ablations import registry
from experiments.gpt2_common import build_gpt2_step, run_record, variant_step
from experiments.profiles import parse_steps, resolve
from experiments.results import exit_on_results_error

EXPERIMENT = "gpt2_variants"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runner.add_common_args(ap)
    args = ap.parse_args(argv)
    valid = list(registry.get().variants)
    try:
        profile = resolve(args.profile, args.iters, args.time)
        prefixes = parse_steps(args.steps, valid)
        device = runner.pick_device(profile.device, args.gpu, profile.gpus)
    except (ValueError, RuntimeError) as e:
        print(f"{EXPERIMENT}: {e}", file=sys.stderr)
        return 2
    if args.list:
        for p in valid:
            st = variant_step(p)
            print(f"{p:9s} {st.class_name:16s} {st.doc}")
        return 0
    compile_flag = args.compile
    config, train_meta = run_record(EXPERIMENT, profile, args.seed, compile_flag)
    specs = [
        runner.StepSpec(
            name=p,
            label=variant_step(p).doc,
            build=lambda device, p=p: build_gpt2_step(
                variant_step(p), profile, device, args.seed, compile_flag
            ),
        )
        for p in prefixes
    ]
    return runner.run_steps(EXPERIMENT, specs, args, config, train_meta, device)


if __name__ == "__main__":
    sys.exit(exit_on_results_error(main))
