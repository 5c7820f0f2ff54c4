"""Prepares FineWebEdu, OpenWebText or TinyStories on a host that reaches the Hugging Face hub.

This is the manual step for GPU hosts; the build machines cannot reach the
hub, so nothing in `bazel test //...` runs it. It streams the corpus with the
`datasets` library (install it on that host: `pip install datasets`; it is
deliberately not in the lock), tokenizes with the same pinned GPT-2 BPE as
data/prepare_text.py and writes the same layout to --out/<dataset>/:
train.bin, val.bin (uint16) and meta.json.

  bazel run //data:prepare_hub -- --dataset fineweb-edu --out $KNLP_DATA_DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from data.tokenizer import EOT_ID, VOCAB_SIZE, gpt2_encoding

# name -> (hub path, config, split, text field, default token cap)
SOURCES = {
    "fineweb-edu": ("HuggingFaceFW/fineweb-edu", "sample-10BT", "train", "text", 100_000_000),
    "openwebtext": ("Skylion007/openwebtext", None, "train", "text", None),
    "tinystories": ("roneneldan/TinyStories", None, "train", "text", None),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, choices=sorted(SOURCES))
    ap.add_argument("--out", default=os.environ.get("KNLP_DATA_DIR"))
    ap.add_argument("--max-tokens", type=int, default=None, help="cap on tokens kept")
    ap.add_argument("--val-every", type=int, default=200, help="every Nth document goes to val")
    args = ap.parse_args(argv)
    if not args.out:
        ap.error("--out (or KNLP_DATA_DIR) is required")
    try:
        import datasets
    except ImportError:
        print(
            "prepare_hub needs the `datasets` package, which is not in the lock: "
            "run `pip install datasets` in this host's venv (a GPU host with network).",
            file=sys.stderr,
        )
        return 2
    path, config, split, field, cap = SOURCES[args.dataset]
    cap = args.max_tokens or cap
    enc = gpt2_encoding()
    ds = datasets.load_dataset(path, config, split=split, streaming=True)
    out = os.path.join(args.out, args.dataset)
    os.makedirs(out, exist_ok=True)
    files = {s: open(os.path.join(out, f"{s}.bin.tmp"), "wb") for s in ("train", "val")}
    counts = {"train": 0, "val": 0}
    for i, row in enumerate(ds):
        ids = np.asarray(enc.encode_ordinary(row[field]) + [EOT_ID], dtype=np.uint16)
        s = "val" if i % args.val_every == 0 else "train"
        ids.tofile(files[s])
        counts[s] += ids.size
        if cap and counts["train"] + counts["val"] >= cap:
            break
        if i % 10000 == 0:
            print(f"{args.dataset}: {i:,} docs, {sum(counts.values()):,} tokens", file=sys.stderr)
    for s, f in files.items():
        f.close()
        os.replace(os.path.join(out, f"{s}.bin.tmp"), os.path.join(out, f"{s}.bin"))
    meta = {
        "name": args.dataset,
        "source": " ".join(p for p in (path, config, split) if p),
        "tokenizer": "gpt2",
        "vocab_size": VOCAB_SIZE,
        "eot_id": EOT_ID,
        "dtype": "uint16",
        "train_tokens": counts["train"],
        "val_tokens": counts["val"],
        "split": f"every {args.val_every}th document -> val",
    }
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    print(f"{args.dataset}: wrote {out}: {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
