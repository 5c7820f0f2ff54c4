"""The digest of a run's inputs: the key of its checkpoint and the provenance of its result.

Bazel keys a run's action by everything the action reads, but does not tell
the action its key. The rule (experiments/defs.bzl) therefore hands the
action the list of its inputs (`<short path>\\t<path>` per line: the run's
spec, the step program's runfiles, the dataset, the lock's venv_info.json),
and `inputs_digest` hashes exactly those files, by their short paths, so the
digest is the same in every checkout and on every machine. The checkpoint
store (experiments/store.py) is keyed by it, and every result records it
(`RunResult.inputs_sha256`), so two results with the same digest were made
from the same code, data and settings.
"""

from __future__ import annotations

import hashlib


def read_inputs(path: str) -> list[tuple[str, str]]:
    """The (short path, path) pairs of an inputs list, sorted by short path."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                short, _, real = line.partition("\t")
                pairs.append((short, real or short))
    return sorted(set(pairs))


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inputs_digest(pairs: list[tuple[str, str]]) -> str:
    """sha256 over every input's short path and content sha256, in short-path order."""
    h = hashlib.sha256()
    for short, real in sorted(pairs):
        h.update(f"{short}\0{file_sha256(real)}\n".encode())
    return h.hexdigest()
