"""Refuses to compare runs that differ in what makes a comparison fair.

  bazel run //tools/verify_runs -- results/gpt2_ratio_ablation/h100-1a2b3c4d results/...

Reads each run's manifest.json and checks the fields the group requires to
agree before publishing a comparison (experiments/results.py,
COMPARABLE_FIELDS): effective batch, iteration and time budget,
torch.compile, dataset, eval protocol, precision, machine, device count,
torch/CUDA/ROCm versions, lock hash, git commit and dirty tree. Prints
"comparable" and exits 0, or names every differing field with each run's
value and exits 1. `--allow FIELD` accepts a known difference (say, commit
when comparing code versions on purpose); a run whose commit is unknown or
dirty is refused unless `--allow commit` / `--allow "dirty tree"`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from experiments.results import COMPARABLE_FIELDS, get_field


def load_manifest(path: str) -> dict:
    p = os.path.join(path, "manifest.json") if os.path.isdir(path) else path
    if not os.path.exists(p):
        raise FileNotFoundError(f"{path}: no manifest.json (is it a run directory?)")
    with open(p) as f:
        return json.load(f)


def differences(manifests: dict[str, dict], allow: set[str] = frozenset()) -> dict[str, dict]:
    """field -> {run: value} for every comparable field whose values differ."""
    out = {}
    for name, dotted in COMPARABLE_FIELDS.items():
        if name in allow:
            continue
        values = {run: get_field(m, dotted) for run, m in manifests.items()}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            out[name] = values
    return out


def problems(manifests: dict[str, dict], allow: set[str] = frozenset()) -> list[str]:
    """Per-run issues that make a run unpublishable on its own."""
    out = []
    for run, m in manifests.items():
        if "commit" not in allow and not get_field(m, "git.commit"):
            out.append(f"{run}: git commit unknown")
        if "dirty tree" not in allow and get_field(m, "git.dirty"):
            out.append(f"{run}: ran from a dirty tree (uncommitted changes)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories (or manifest.json files)")
    ap.add_argument(
        "--allow",
        action="append",
        default=[],
        help=f"a field allowed to differ: {', '.join(COMPARABLE_FIELDS)}",
    )
    args = ap.parse_args(argv)
    for a in args.allow:
        if a not in COMPARABLE_FIELDS:
            ap.error(f"--allow {a!r}: not a field; fields: {', '.join(COMPARABLE_FIELDS)}")
    if len(args.runs) < 2:
        ap.error("give at least two runs to compare")
    base = os.environ.get("BUILD_WORKING_DIRECTORY", "")
    manifests = {r: load_manifest(os.path.join(base, r)) for r in args.runs}
    diff = differences(manifests, set(args.allow))
    probs = problems(manifests, set(args.allow))
    if not diff and not probs:
        print(f"comparable: {len(manifests)} runs agree on {len(COMPARABLE_FIELDS)} fields")
        return 0
    if diff:
        print(f"not comparable: {len(diff)} field(s) differ: {', '.join(diff)}")
        for field, values in diff.items():
            print(f"  {field} ({COMPARABLE_FIELDS[field]}):")
            for run, v in values.items():
                print(f"    {run}: {v}")
    for p in probs:
        print(f"refused: {p}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
