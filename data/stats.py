"""A token dataset's statistics: what a model that learned nothing but frequencies scores.

    stats.py --dataset-dir DIR --out stats.json

`unigram_entropy` is the entropy, in nats, of the validation split's token
frequencies: the loss of a model that learned only how often each token
occurs. The research checks call a run "learned" when it ends well below it
(experiments/checks.py). Each dataset's stats.json is a build action of its
own (data/BUILD.bazel), computed once and shared by every run and report
that reads the dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def unigram_entropy(tokens) -> float:
    """Entropy in nats of the tokens' unigram distribution (a model that learned nothing else)."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def dataset_stats(dataset_dir: str) -> dict:
    """{"unigram_entropy", "val_tokens", "vocab_size"} of a prepared dataset directory."""
    with open(os.path.join(dataset_dir, "meta.json")) as f:
        meta = json.load(f)
    val = np.memmap(
        os.path.join(dataset_dir, "val.bin"), dtype=np.dtype(meta.get("dtype", "uint16")), mode="r"
    )
    return {
        "unigram_entropy": unigram_entropy(val),
        "val_tokens": int(len(val)),
        "vocab_size": int(meta["vocab_size"]),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    stats = dataset_stats(args.dataset_dir)
    with open(args.out, "w") as f:
        json.dump(stats, f, indent=1, sort_keys=True)
        f.write("\n")
    print(
        f"{args.dataset_dir}: unigram entropy {stats['unigram_entropy']:.4f} nats", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
