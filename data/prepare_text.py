"""Tokenizes text files with GPT-2 BPE into uint16 train/val memmaps.

Run as a Bazel build action (data/BUILD.bazel, `:shakespeare`) so the result is
cached, or by hand for another corpus. Writes to --out-dir:

  train.bin, val.bin   flat uint16 token ids (np.memmap-able), documents
                       separated by <|endoftext|> (50256)
  meta.json            vocab size, dtype, token counts, split rule, and the
                       sha256 of every input file

Split rule: each document's last `--val-fraction` of tokens goes to val, the
rest to train, so both splits cover every document and no text is in both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np

from data.tokenizer import EOT_ID, VOCAB_SIZE, gpt2_encoding


def tokenize_documents(paths, bpe_dir, val_fraction):
    enc = gpt2_encoding(bpe_dir)
    train, val, sources = [], [], []
    for path in sorted(paths, key=os.path.basename):
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8", errors="replace")
        ids = enc.encode_ordinary(text) + [EOT_ID]
        cut = int(len(ids) * (1.0 - val_fraction))
        train.extend(ids[:cut])
        val.extend(ids[cut:])
        sources.append(
            {
                "file": os.path.basename(path),
                "sha256": hashlib.sha256(raw).hexdigest(),
                "tokens": len(ids),
            }
        )
    return np.asarray(train, dtype=np.uint16), np.asarray(val, dtype=np.uint16), sources


def write_split(arr: np.ndarray, path: str) -> None:
    tmp = path + ".tmp"
    arr.tofile(tmp)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="dataset name recorded in meta.json")
    ap.add_argument("--vocab-bpe", required=True, help="path to GPT-2's vocab.bpe")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("texts", nargs="+", help="UTF-8 text files, one document each")
    args = ap.parse_args(argv)
    if not 0.0 < args.val_fraction < 0.5:
        ap.error(f"--val-fraction {args.val_fraction} must be in (0, 0.5)")
    assert VOCAB_SIZE <= np.iinfo(np.uint16).max + 1
    bpe_dir = os.path.dirname(os.path.abspath(args.vocab_bpe))
    train, val, sources = tokenize_documents(args.texts, bpe_dir, args.val_fraction)
    os.makedirs(args.out_dir, exist_ok=True)
    write_split(train, os.path.join(args.out_dir, "train.bin"))
    write_split(val, os.path.join(args.out_dir, "val.bin"))
    meta = {
        "name": args.name,
        "tokenizer": "gpt2",
        "vocab_size": VOCAB_SIZE,
        "eot_id": EOT_ID,
        "dtype": "uint16",
        "train_tokens": int(train.size),
        "val_tokens": int(val.size),
        "split": f"last {args.val_fraction:g} of each document's tokens -> val",
        "documents": sources,
    }
    with open(os.path.join(args.out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(
        f"{args.name}: {len(sources)} documents, {train.size:,} train and {val.size:,} val tokens",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
