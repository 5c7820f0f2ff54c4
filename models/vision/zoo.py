"""The vision models by name, as the pruning benchmarks know them."""

from models.vision.lenet import LeNet5
from models.vision.resnet import resnet18, resnet50

VISION_MODELS = {
    "lenet5": LeNet5,  # MNIST, 1x28x28, 10 classes
    "resnet18": resnet18,  # CIFAR-10, 3x32x32
    "resnet50": resnet50,  # CIFAR-100, 3x32x32
}

INPUT_SHAPES = {"lenet5": (1, 28, 28), "resnet18": (3, 32, 32), "resnet50": (3, 32, 32)}


def build(name, **kwargs):
    if name not in VISION_MODELS:
        raise ValueError(f"unknown vision model {name!r}; accepted: {', '.join(VISION_MODELS)}")
    return VISION_MODELS[name](**kwargs)
