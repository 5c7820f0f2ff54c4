"""Lists an experiment's steps on a profile, as the build declares them.

    bazel run //experiments:list_steps -- gpt2_ratio_ablation [--profile h100]
    bazel run //experiments:list_steps                       # every experiment

Reads //experiments:steps (steps.json: experiment -> profile -> steps, written
by experiments/defs.bzl from experiments/experiments.bzl), so the names it
prints are exactly what `--steps=` accepts: a step's name, or an alias in
brackets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

STEPS_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "steps.json")


def main(argv=None) -> int:
    with open(STEPS_JSON) as f:
        declared = json.load(f)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", nargs="?", choices=sorted(declared))
    ap.add_argument("--profile", default="cpu")
    args = ap.parse_args(argv)
    for name in [args.experiment] if args.experiment else list(declared):
        if args.profile not in declared[name]:
            profiles = ", ".join(declared[name])
            print(f"list_steps: unknown profile {args.profile!r}; accepted: {profiles}")
            return 2
        print(f"{name} (profile {args.profile}):")
        for step in declared[name][args.profile]:
            alias = f" [{', '.join(step['aliases'])}]" if step["aliases"] else ""
            print(f"  {step['name']}{alias}  {step['label']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
