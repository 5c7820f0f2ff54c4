"""Tokenizes text files into uint16 train/val memmaps: GPT-2 BPE or characters.

Run as a Bazel build action (data/BUILD.bazel, `:shakespeare` and
`:shakespeare_char`) so the result is cached, or by hand for another corpus.
Writes to --out-dir:

  train.bin, val.bin   flat uint16 token ids (np.memmap-able)
  meta.json            tokenizer, vocab size, dtype, token counts, split rule,
                       the sha256 of every input file, and for characters the
                       vocabulary itself (id i is the i-th character of `chars`)

`--tokenizer gpt2` (with --vocab-bpe) separates documents by <|endoftext|>
(50256). `--tokenizer char` maps every distinct character of the inputs, in
code-point order, to its index; documents are simply concatenated.

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


def read_documents(paths) -> list[tuple[str, bytes, str]]:
    """(file name, raw bytes, text) of every input, in file-name order."""
    docs = []
    for path in sorted(paths, key=os.path.basename):
        with open(path, "rb") as f:
            raw = f.read()
        docs.append((os.path.basename(path), raw, raw.decode("utf-8", errors="replace")))
    return docs


def char_vocabulary(docs) -> str:
    """Every distinct character of the documents, in code-point order."""
    return "".join(sorted(set().union(*(set(text) for _, _, text in docs))))


def gpt2_encoder(bpe_dir):
    enc = gpt2_encoding(bpe_dir)
    return lambda text: enc.encode_ordinary(text) + [EOT_ID]


def char_encoder(chars: str):
    index = {c: i for i, c in enumerate(chars)}
    return lambda text: [index[c] for c in text]


def tokenize_documents(docs, encode, val_fraction):
    train, val, sources = [], [], []
    for name, raw, text in docs:
        ids = encode(text)
        cut = int(len(ids) * (1.0 - val_fraction))
        train.extend(ids[:cut])
        val.extend(ids[cut:])
        sources.append(
            {
                "file": name,
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
    ap.add_argument("--tokenizer", default="gpt2", choices=("gpt2", "char"))
    ap.add_argument("--vocab-bpe", help="path to GPT-2's vocab.bpe (--tokenizer gpt2)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("texts", nargs="+", help="UTF-8 text files, one document each")
    args = ap.parse_args(argv)
    if not 0.0 < args.val_fraction < 0.5:
        ap.error(f"--val-fraction {args.val_fraction} must be in (0, 0.5)")
    if args.tokenizer == "gpt2" and not args.vocab_bpe:
        ap.error("--tokenizer gpt2 needs --vocab-bpe (the path to GPT-2's vocab.bpe)")
    docs = read_documents(args.texts)
    if args.tokenizer == "gpt2":
        encode = gpt2_encoder(os.path.dirname(os.path.abspath(args.vocab_bpe)))
        vocab = {"tokenizer": "gpt2", "vocab_size": VOCAB_SIZE, "eot_id": EOT_ID}
    else:
        chars = char_vocabulary(docs)
        encode = char_encoder(chars)
        vocab = {"tokenizer": "char", "vocab_size": len(chars), "chars": chars}
    assert vocab["vocab_size"] <= np.iinfo(np.uint16).max + 1
    train, val, sources = tokenize_documents(docs, encode, args.val_fraction)
    os.makedirs(args.out_dir, exist_ok=True)
    write_split(train, os.path.join(args.out_dir, "train.bin"))
    write_split(val, os.path.join(args.out_dir, "val.bin"))
    meta = {
        "name": args.name,
        **vocab,
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
