"""The GPT-2 pruning comparison: every method at one target, one schedule and one budget.

Literals only (tools/bazel/bzl_data.py). experiments/experiments.bzl makes one
step per optimizer and method, `<optimizer>-<method>` (`adamw-bitter7`,
`adamwspam-none`), each a "gpt2" run (experiments/gpt2_step.py) of the model
below on the profile's data and size: GPT-2 124M on FineWebEdu on the GPU
profiles, the cpu profile's trunk on Shakespeare characters. Every method
is built by pruning/methods.py from the same schedule with the same optimizer
hyperparameters (the profile's), so the method is the only difference
between two steps of one optimizer. The old tree's headline (GPT-2 124M at
50%: bitter7 37.28 perplexity, movement 44.15, bitter8 40.94) is what the GPU
profiles of this experiment measure.
"""

# The model: class GPT2 (variant B) on the RATIO base (GPT-2 124M, dropout 0.1
# at real size), MLP ratio 4.0, as RATIO steps 0 and 1.
MODEL = {"variant": "B", "options": {"mlp_ratio": 4.0}}

OPTIMIZERS = ["adamw", "adamwspam"]

# none is the dense reference; magnitude and movement are pruning/masks.py's
# (movement: S = W (W - W0), the old tree's formula), bitter7/8/9 AdamWPrune's.
METHODS = ["none", "magnitude", "movement", "bitter7", "bitter8", "bitter9"]

TARGET = 0.5

# Every method's schedule, declared for the RATIO budget (10,400 iterations)
# and scaled to a profile's budget as RATIO step 1's is (pruning/schedule.py
# scaled): rescoring every 50 iterations from 1,000, the target at 3,000.
SCHEDULE = {"warmup": 1000, "ramp_end": 3000, "frequency": 50}

# Each step's reference: the dense step of the same optimizer.
REFERENCE = {
    "adamw-magnitude": "adamw-none",
    "adamw-movement": "adamw-none",
    "adamw-bitter7": "adamw-none",
    "adamw-bitter8": "adamw-none",
    "adamw-bitter9": "adamw-none",
    "adamwspam-magnitude": "adamwspam-none",
    "adamwspam-movement": "adamwspam-none",
    "adamwspam-bitter7": "adamwspam-none",
    "adamwspam-bitter8": "adamwspam-none",
    "adamwspam-bitter9": "adamwspam-none",
}
