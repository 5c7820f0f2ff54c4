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

import sys

from experiments.ablations import registry
from experiments.gpt2_common import Experiment, main, step_config
from experiments.results import exit_on_results_error

EXPERIMENT = "gpt2_ratio_ablation"


def step_name(step_id: int) -> str:
    return f"step{int(step_id):02d}"


def _listing(sid, st, profile):
    cfg = step_config(st, profile)
    return f"{step_name(sid)}  {st.class_name:16s} mlp {cfg.mlp_dim:5d}  {st.doc}"


RATIO = Experiment(
    name=EXPERIMENT,
    doc=__doc__,
    step_names=lambda: [str(i) for i in registry.step_ids()],
    step=registry.step,
    dir_name=step_name,
    label=lambda st: f"{st.variant}: {st.doc}",
    listing=_listing,
)

if __name__ == "__main__":
    sys.exit(exit_on_results_error(lambda: main(RATIO)))
