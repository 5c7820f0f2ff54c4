"""Image classification datasets as in-memory tensors.

`digits` (scikit-learn's 1,797 8x8 handwritten digits, shipped inside the
scikit-learn wheel) works anywhere and is the CPU default. `mnist`,
`cifar10` and `cifar100` are read from $KNLP_DATA_DIR when present there in
their original distribution formats; a missing one raises an error naming
`bazel run //data:prepare_vision -- --dataset NAME`, which fetches it on a
host with network access.

A dataset may carry a training augmentation (data/augment.py, by name:
`load_vision("cifar10", augment="crop_flip")`); `VisionData` applies it to
every training batch it hands out and to no test batch.
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from data.augment import CropFlip, augmentation
from tools.bazel.bzl_data import load_bzl

VISION_DATASETS = {
    # name: (channels, native size, classes)
    "digits": (1, 8, 10),
    "mnist": (1, 28, 10),
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
}

# How each dataset outside the wheel is prepared (data/datasets.bzl).
_PREPARE = {
    name: d["prepare"]
    for name, d in load_bzl(os.path.join(os.path.dirname(__file__), "datasets.bzl"))[
        "PREPARED"
    ].items()
    if d["modality"] == "vision"
}


@dataclass
class VisionData:
    name: str
    x_train: torch.Tensor  # [N, C, H, W] float32, normalized
    y_train: torch.Tensor  # [N] int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    augment: CropFlip | None = None  # applied to training batches only
    mean: float = 0.0  # the normalization: stored value = (pixel - mean) / std
    std: float = 1.0

    def _split(self, split: str):
        if split not in ("train", "test"):
            raise ValueError(f"split {split!r}: accepted: train, test")
        if split == "test":
            return self.x_test, self.y_test
        return self.x_train, self.y_train

    def _augmented(self, split: str, x: torch.Tensor, generator: torch.Generator | None):
        if split != "train" or self.augment is None:
            return x
        if generator is None:
            raise ValueError(
                f"{self.name}'s training batches are augmented ({self.augment.name}); "
                "pass a seeded torch.Generator"
            )
        return self.augment(x, generator, fill=-self.mean / self.std)  # pad with black

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None):
        """Yields (x, y) minibatches; shuffled (and augmented, for train) with a generator."""
        x, y = self._split(split)
        order = (
            torch.randperm(len(x), generator=generator)
            if generator is not None
            else torch.arange(len(x))
        )
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            yield self._augmented(split, x[idx], generator), y[idx]

    def sample(self, split: str, batch_size: int, generator: torch.Generator):
        """One batch of `batch_size` samples drawn with replacement (augmented, for train)."""
        x, y = self._split(split)
        idx = torch.randint(len(x), (batch_size,), generator=generator).to(x.device)
        return self._augmented(split, x[idx], generator), y[idx]


def _missing(name: str, where: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"vision dataset {name!r} not found at {where}. " f"Prepare it with: {_PREPARE[name]}"
    )


def _root(data_dir: str | None) -> str:
    root = data_dir or os.environ.get("KNLP_DATA_DIR")
    if not root:
        raise FileNotFoundError(
            "KNLP_DATA_DIR is not set; it names the directory holding mnist/ and cifar*/ "
            "(see data/README.md)"
        )
    return root


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32) / 16.0
    y = d.target.astype(np.int64)
    # A fixed, stratified-enough split: every 5th sample is test (20%).
    test = np.arange(len(x)) % 5 == 0
    return x[~test, None], y[~test], x[test, None], y[test]


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _mnist(root: str):
    d = os.path.join(root, "mnist")
    names = {
        "xtr": "train-images-idx3-ubyte",
        "ytr": "train-labels-idx1-ubyte",
        "xte": "t10k-images-idx3-ubyte",
        "yte": "t10k-labels-idx1-ubyte",
    }
    arrays = {}
    for key, base in names.items():
        for cand in (base, base + ".gz"):
            if os.path.exists(os.path.join(d, cand)):
                arrays[key] = _read_idx(os.path.join(d, cand))
                break
        else:
            raise _missing("mnist", os.path.join(d, base + "[.gz]"))
    f = lambda a: a.astype(np.float32)[:, None] / 255.0  # noqa: E731
    return (
        f(arrays["xtr"]),
        arrays["ytr"].astype(np.int64),
        f(arrays["xte"]),
        arrays["yte"].astype(np.int64),
    )


def _cifar(root: str, classes: int):
    if classes == 10:
        d = os.path.join(root, "cifar-10-batches-py")
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        test_files, key = ["test_batch"], b"labels"
        name = "cifar10"
    else:
        d = os.path.join(root, "cifar-100-python")
        train_files, test_files, key = ["train"], ["test"], b"fine_labels"
        name = "cifar100"

    def load(files):
        xs, ys = [], []
        for fn in files:
            p = os.path.join(d, fn)
            if not os.path.exists(p):
                raise _missing(name, p)
            with open(p, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[key], dtype=np.int64))
        return np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys)

    xtr, ytr = load(train_files)
    xte, yte = load(test_files)
    return xtr, ytr, xte, yte


def load_vision(
    name: str,
    image_size: int | None = None,
    channels: int | None = None,
    data_dir: str | None = None,
    limit_train: int | None = None,
    augment: str | None = None,
) -> VisionData:
    """Loads `name`, optionally resized to `image_size` and repeated to `channels`.

    `augment` names the training augmentation (data/augment.py AUGMENTATIONS).
    """
    if name not in VISION_DATASETS:
        raise ValueError(f"unknown vision dataset {name!r}; known: {', '.join(VISION_DATASETS)}")
    transform = augmentation(augment)
    _, _, classes = VISION_DATASETS[name]
    if name == "digits":
        xtr, ytr, xte, yte = _digits()
    elif name == "mnist":
        xtr, ytr, xte, yte = _mnist(_root(data_dir))
    else:
        xtr, ytr, xte, yte = _cifar(_root(data_dir), classes)
    if limit_train:
        xtr, ytr = xtr[:limit_train], ytr[:limit_train]
    mean, std = float(xtr.mean()), float(xtr.std()) + 1e-8

    def prep(x):
        t = (torch.from_numpy(np.ascontiguousarray(x)) - mean) / std
        if image_size and t.shape[-1] != image_size:
            t = F.interpolate(
                t, size=(image_size, image_size), mode="bilinear", align_corners=False
            )
        if channels and t.shape[1] != channels:
            if t.shape[1] != 1:
                raise ValueError(f"cannot map {t.shape[1]} channels to {channels}")
            t = t.repeat(1, channels, 1, 1)
        return t.contiguous()

    return VisionData(
        name=name,
        x_train=prep(xtr),
        y_train=torch.from_numpy(ytr),
        x_test=prep(xte),
        y_test=torch.from_numpy(yte),
        num_classes=classes,
        augment=transform,
        mean=mean,
        std=std,
    )
