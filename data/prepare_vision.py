"""Fetches MNIST, CIFAR-10 or CIFAR-100 into $KNLP_DATA_DIR on a host with network.

The build machines cannot reach these hosts; this is the manual step for GPU
hosts. Files land in the layout data/vision.py reads:
mnist/*-idx?-ubyte.gz, cifar-10-batches-py/, cifar-100-python/.

  bazel run //data:prepare_vision -- --dataset mnist --out $KNLP_DATA_DIR
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import urllib.request

SOURCES = {
    "mnist": [
        f"https://ossci-datasets.s3.amazonaws.com/mnist/{n}.gz"
        for n in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    ],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"],
    "cifar100": ["https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"],
}


def _extract(tf: tarfile.TarFile, dest: str) -> None:
    """Extracts plain files and directories only, nothing outside `dest`.

    tarfile's filter="data" does this from Python 3.11.4 (and 3.12); Debian's
    3.11.2 lacks the argument, so the same rule is checked here first.
    """
    for m in tf.getmembers():
        parts = m.name.replace("\\", "/").split("/")
        if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
            raise SystemExit(f"refusing archive member {m.name!r}: accepted: files under {dest}")
    if hasattr(tarfile, "data_filter"):
        tf.extractall(dest, filter="data")
    else:
        tf.extractall(dest)  # noqa: S202 - every member was checked above


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, choices=sorted(SOURCES))
    ap.add_argument("--out", default=os.environ.get("KNLP_DATA_DIR"))
    args = ap.parse_args(argv)
    if not args.out:
        ap.error("--out (or KNLP_DATA_DIR) is required")
    dest = os.path.join(args.out, "mnist") if args.dataset == "mnist" else args.out
    os.makedirs(dest, exist_ok=True)
    for url in SOURCES[args.dataset]:
        target = os.path.join(dest, url.rsplit("/", 1)[1])
        print(f"fetching {url}", file=sys.stderr)
        urllib.request.urlretrieve(url, target + ".tmp")
        os.replace(target + ".tmp", target)
        if target.endswith(".tar.gz"):
            with tarfile.open(target) as tf:
                _extract(tf, dest)
            os.remove(target)
    print(f"{args.dataset}: ready under {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
