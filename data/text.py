"""Token datasets for language-model training: uint16 memmaps and random batches.

A dataset is a directory holding train.bin, val.bin and meta.json as written
by data/prepare_text.py (or data/prepare_hub.py). `open_dataset(name)` finds
it: the built-in `shakespeare` is a Bazel build output next to this file in
the runfiles tree; the large corpora live under $KNLP_DATA_DIR/<name>/ on the
GPU hosts that prepared them. A missing dataset raises an error that names
the command which prepares it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch

from tools.bazel.bzl_data import load_bzl

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> how to prepare it, from data/datasets.bzl: `shakespeare` (GPT-2 BPE) and
# `shakespeare_char` (one token per character) are built by Bazel; the rest need
# a host with network access to the Hugging Face hub (see data/README.md).
_DECLARED = load_bzl(os.path.join(HERE, "datasets.bzl"))
DATASETS = {name: f"bazel build {label}" for name, label in _DECLARED["BUILT"].items()}
DATASETS.update(
    {n: d["prepare"] for n, d in _DECLARED["PREPARED"].items() if d["modality"] == "text"}
)

# Datasets whose tokens are not GPT-2 BPE: name -> tokenizer (meta.json says the same).
TOKENIZERS = _DECLARED["TOKENIZERS"]


def tokenizer_of(name: str) -> str:
    """ "gpt2" or "char": known without preparing the dataset (GPU corpora live elsewhere)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return TOKENIZERS.get(name, "gpt2")


def dataset_dir(name: str, data_dir: str | None = None) -> str:
    """Returns the directory of dataset `name`, or raises naming the command that prepares it."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    if data_dir:  # a run's action names its dataset's directory: nowhere else counts
        candidates = [os.path.join(data_dir, name)]
    else:
        candidates = []
        if os.environ.get("KNLP_DATA_DIR"):
            candidates.append(os.path.join(os.environ["KNLP_DATA_DIR"], name))
        # Bazel runfiles (bazel run/test) place the build output next to this module.
        candidates.append(os.path.join(HERE, name))
        # A plain `pytest`/`python` from the worktree root after `bazel build //data:<name>`.
        candidates.append(os.path.join(HERE, "..", "bazel-bin", "data", name))
    for c in candidates:
        if all(os.path.exists(os.path.join(c, f)) for f in ("train.bin", "val.bin", "meta.json")):
            return os.path.abspath(c)
    raise FileNotFoundError(
        f"dataset {name!r} is not prepared (looked in {', '.join(candidates)}). "
        f"Prepare it with: {DATASETS[name]}"
    )


@dataclass
class TokenDataset:
    """The train/val token streams of one prepared dataset."""

    name: str
    path: str
    meta: dict
    train: np.memmap
    val: np.memmap

    def split(self, split: str) -> np.memmap:
        if split not in ("train", "val"):
            raise ValueError(f"split {split!r}: accepted: train, val")
        return self.train if split == "train" else self.val

    def get_batch(
        self,
        split: str,
        batch_size: int,
        block_size: int,
        generator: torch.Generator,
        device: str | torch.device = "cpu",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random contiguous windows: x = tokens[i:i+T], y = tokens[i+1:i+T+1]."""
        data = self.split(split)
        if len(data) <= block_size + 1:
            raise ValueError(
                f"{self.name}/{split} has {len(data)} tokens, too few for block_size {block_size}"
            )
        ix = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)
        x = np.stack([data[i : i + block_size] for i in ix.tolist()]).astype(np.int64)
        y = np.stack([data[i + 1 : i + 1 + block_size] for i in ix.tolist()]).astype(np.int64)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        if torch.device(device).type == "cuda":
            return xt.pin_memory().to(device, non_blocking=True), yt.pin_memory().to(
                device, non_blocking=True
            )
        return xt.to(device), yt.to(device)


def open_dataset(name: str, data_dir: str | None = None) -> TokenDataset:
    path = dataset_dir(name, data_dir)
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    dtype = np.dtype(meta.get("dtype", "uint16"))
    train = np.memmap(os.path.join(path, "train.bin"), dtype=dtype, mode="r")
    val = np.memmap(os.path.join(path, "val.bin"), dtype=dtype, mode="r")
    return TokenDataset(name=name, path=path, meta=meta, train=train, val=val)
