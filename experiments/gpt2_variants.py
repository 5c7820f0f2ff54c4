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

import sys

from experiments.ablations import registry
from experiments.gpt2_common import Experiment, main, variant_step
from experiments.results import exit_on_results_error

EXPERIMENT = "gpt2_variants"

VARIANTS = Experiment(
    name=EXPERIMENT,
    doc=__doc__,
    step_names=lambda: list(registry.get().variants),
    step=variant_step,
    dir_name=lambda prefix: prefix,
    label=lambda st: st.doc,
    listing=lambda prefix, st, profile: f"{prefix:9s} {st.class_name:16s} {st.doc}",
)

if __name__ == "__main__":
    sys.exit(exit_on_results_error(lambda: main(VARIANTS)))
