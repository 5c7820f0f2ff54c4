"""The pruning matrix: optimizer x pruning method x target sparsity on the vision models.

Literals only (tools/bazel/bzl_data.py). experiments/experiments.bzl turns
them into one step per cell at analysis; experiments/vision_step.py reads a
cell's declaration when it trains it. A cell is named
`<model>-<optimizer>-<method>[-<percent>]` (`lenet5-adamw-bitter7-70`), and
its reference is the dense cell of its model and optimizer
(`lenet5-adamw-none`).
"""

# Per device kind ("cpu" for any cpu profile, "cuda" for a GPU one) and model:
# the dataset (data/vision.py), the image size and channels the model is fed,
# iterations, batch, and the training augmentation (data/augment.py
# AUGMENTATIONS; None for none), which the cell's training batches get and its
# test batches never. The cpu entries are dry-run sized on scikit-learn's
# digits; the cuda entries are the old tree's benchmarks on the real datasets
# under $KNLP_DATA_DIR:
#
#   lenet5    MNIST      10 epochs of 469 batches of 128
#   resnet18  CIFAR-10   100 epochs of 391 batches of 128, random crop (padding 4) and flip
#   resnet50  CIFAR-100  100 epochs of 391 batches of 128, random crop (padding 4) and flip
#
# The old tree ran ResNet-50 on CIFAR-100 on a 2-hour budget (its
# resnet50-baseline-vs-bitter7 configuration) with the images resized to 224
# for an ImageNet-stem ResNet-50; models/vision's ResNet-50 has the CIFAR stem
# (3x3, no max-pool) and takes the 32x32 images as they are, for ResNet-18's
# iteration budget.
MODELS = {
    "cpu": {
        "lenet5": {"dataset": "digits", "image_size": 28, "channels": 1, "iters": 300, "batch": 64, "augment": None},
        "resnet18": {"dataset": "digits", "image_size": 16, "channels": 3, "iters": 40, "batch": 32, "augment": None},
        "resnet50": {"dataset": "digits", "image_size": 16, "channels": 3, "iters": 20, "batch": 16, "augment": None},
    },
    "cuda": {
        "lenet5": {"dataset": "mnist", "image_size": 28, "channels": 1, "iters": 4690, "batch": 128, "augment": None},
        "resnet18": {"dataset": "cifar10", "image_size": 32, "channels": 3, "iters": 39100, "batch": 128, "augment": "crop_flip"},
        "resnet50": {"dataset": "cifar100", "image_size": 32, "channels": 3, "iters": 39100, "batch": 128, "augment": "crop_flip"},
    },
}

# What each entry of MODELS holds, in order.
MODEL_KEYS = ["dataset", "image_size", "channels", "iters", "batch", "augment"]

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
    "models": ["lenet5", "resnet18", "resnet50"],
    "optimizers": ["sgd", "adamw"],
    "methods": ["none", "magnitude", "movement", "bitter7"],
    "sparsities": [0.5, 0.7, 0.9],
}

# On the CPU, the models of CPU_REDUCED (ResNet-18 costs about 100x LeNet-5,
# ResNet-50 more) train these cells only.
CPU_REDUCED = ["resnet18", "resnet50"]
CPU_RESNET = {
    "optimizers": ["adamw"],
    "methods": ["none", "magnitude", "bitter7"],
    "sparsities": [0.5],
}
