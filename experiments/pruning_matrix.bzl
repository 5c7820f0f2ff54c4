"""The pruning matrix: optimizer x pruning method x target sparsity on the vision models.

Literals only (tools/bazel/bzl_data.py). experiments/experiments.bzl turns
them into one step per cell at analysis; experiments/vision_step.py reads a
cell's declaration when it trains it. A cell is named
`<model>-<optimizer>-<method>[-<percent>]` (`lenet5-adamw-bitter7-70`).
"""

# Size, data and budget per model, on the CPU (any "cpu" profile) and on a GPU:
# the dataset (data/vision.py), the image size and channels the model sees,
# iterations and batch. The CPU runs train on scikit-learn's digits.
MODELS = {
    "cpu": {
        "lenet5": {"dataset": "digits", "image_size": 28, "channels": 1, "iters": 300, "batch": 64},
        "resnet18": {"dataset": "digits", "image_size": 16, "channels": 3, "iters": 40, "batch": 32},
    },
    "cuda": {
        "lenet5": {"dataset": "mnist", "image_size": 28, "channels": 1, "iters": 4690, "batch": 128},
        "resnet18": {"dataset": "cifar10", "image_size": 32, "channels": 3, "iters": 39100, "batch": 128},
    },
}

# Learning rate per optimizer; weight decay for all.
LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3, "adamwadv": 2e-3, "adamwspam": 2e-3}
WEIGHT_DECAY = 5e-4

# Every cell's pruning schedule, declared for SCHEDULE_ITERS iterations and
# scaled to the cell's budget: warmup 10%, cubic ramp to 60%, 25 rescorings.
SCHEDULE = {"warmup": 10, "ramp_end": 60, "frequency": 2}
SCHEDULE_ITERS = 100

# The optimizers AdamWPrune's scores can read (bitter* score from Adam state,
# so they never pair with sgd); pruning/optimizers.py ADAM_FAMILY.
ADAM_FAMILY = ["adam", "adamw", "adamwadv", "adamwspam"]

# The default matrix. `none` is the dense reference, trained once per model and
# optimizer; magnitude and movement are pruning/masks.py's, bitter* AdamWPrune's.
MATRIX = {
    "models": ["lenet5", "resnet18"],
    "optimizers": ["sgd", "adamw"],
    "methods": ["none", "magnitude", "movement", "bitter7"],
    "sparsities": [0.5, 0.7, 0.9],
}

# On the CPU, ResNet-18 (about 100x LeNet-5's cost) trains these cells only.
CPU_RESNET = {
    "optimizers": ["adamw"],
    "methods": ["none", "magnitude", "bitter7"],
    "sparsities": [0.5],
}
