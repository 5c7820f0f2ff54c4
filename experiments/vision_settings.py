"""The vision rows of the pruning matrix: per device kind and model, the data, input and budget.

One declaration, read by the run target: `VISION[kind][model]` with kind
"cpu" or "cuda". Each entry names the dataset (data/vision.py), the image size
and channel count the model is fed, the iteration budget and batch, and the
training augmentation (data/augment.py; None for none). The cpu entries are
dry-run sized on scikit-learn's digits; the cuda entries are the old tree's
benchmarks on the real datasets under $KNLP_DATA_DIR:

  lenet5    MNIST      10 epochs of 469 batches of 128
  resnet18  CIFAR-10   100 epochs of 391 batches of 128, random crop and flip
  resnet50  CIFAR-100  100 epochs of 391 batches of 128, random crop and flip

The old tree ran ResNet-50 on CIFAR-100 on a 2-hour time budget (its
resnet50-baseline-vs-bitter7 configuration) and resized the images to 224
for an ImageNet-stem ResNet-50; models/vision's ResNet-50 has the CIFAR
stem (3x3, no max-pool) and takes the 32x32 images as they are, for the same
iteration budget as ResNet-18.
"""

from __future__ import annotations

KINDS = ("cpu", "cuda")

VISION = {
    "cpu": {
        "lenet5": dict(
            dataset="digits", image_size=28, channels=1, iters=300, batch=64, augment=None
        ),
        "resnet18": dict(
            dataset="digits", image_size=16, channels=3, iters=40, batch=32, augment=None
        ),
        "resnet50": dict(
            dataset="digits", image_size=16, channels=3, iters=20, batch=16, augment=None
        ),
    },
    "cuda": {
        "lenet5": dict(
            dataset="mnist", image_size=28, channels=1, iters=4690, batch=128, augment=None
        ),
        "resnet18": dict(
            dataset="cifar10",
            image_size=32,
            channels=3,
            iters=39100,
            batch=128,
            augment="crop_flip",
        ),
        "resnet50": dict(
            dataset="cifar100",
            image_size=32,
            channels=3,
            iters=39100,
            batch=128,
            augment="crop_flip",
        ),
    },
}

KEYS = ("dataset", "image_size", "channels", "iters", "batch", "augment")


def setting(kind: str, model: str) -> dict:
    """The settings of `model` on device kind `kind`; unknown names list the accepted ones."""
    if kind not in VISION:
        raise ValueError(f"unknown device kind {kind!r}; accepted: {', '.join(VISION)}")
    if model not in VISION[kind]:
        raise ValueError(
            f"model {model!r} has no {kind} settings; accepted: {', '.join(VISION[kind])}"
        )
    return dict(VISION[kind][model])


def kind_of(device: str) -> str:
    """The device kind a profile's device ("cpu", "cuda", "cuda:1") belongs to."""
    kind = str(device).split(":", 1)[0]
    if kind not in KINDS:
        raise ValueError(f"device {device!r} is invalid; accepted: cpu, cuda, cuda:N")
    return kind
