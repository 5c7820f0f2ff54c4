"""Refuses to compare runs that differ in what makes a comparison fair, and shows what made each.

  bazel run //tools/verify_runs -- results/gpt2_ratio_ablation/h100-1a2b3c4d results/...

Reads each installed run's manifest.json (experiments/record.py Manifest,
written by experiments/install.py) and checks the fields the group requires
to agree before publishing a comparison (record.py COMPARABLE_FIELDS):
effective batch, iteration and time budget, torch.compile, dataset, eval
protocol, precision, machine, device count, torch/CUDA/ROCm versions, lock
hash, git commit and dirty tree. It then lists, run by run (a step and
seed, `step08-s1337`), the digest of the inputs each run's action read and
whether the installed runs agree on it: the same digest means the same
code, data and settings made that run, whichever machine trained it.

Prints "comparable" and exits 0, or names every differing field with each
installed run's value and exits 1. A differing inputs digest is shown, not
refused: comparing two code versions is what a changed digest means.
`--allow FIELD` accepts a known difference (say, commit when comparing code
versions on purpose); an installed run whose commit is unknown or dirty is
refused unless `--allow commit` / `--allow "dirty tree"`. A manifest that is
not a record of this tree's schema (experiments/record.py SCHEMA) fails with one line
naming the file and the key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from experiments.record import COMPARABLE_FIELDS, SCHEMA, Manifest, RecordError, get_field
from experiments.results import ResultsError, read_json


class NotARun(Exception):
    """A path that is not an installed run; the message is one line naming it."""


def load_manifest(path: str) -> dict:
    """An installed run's manifest.json (or the file itself), checked as a record.Manifest."""
    p = os.path.join(path, "manifest.json") if os.path.isdir(path) else path
    obj = read_json(p)
    if obj is None:
        raise NotARun(f"{path}: no manifest.json (is it results/<experiment>/<run_id>?)")
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        schema = obj.get("schema") if isinstance(obj, dict) else None
        raise NotARun(
            f"{p}: schema is {schema!r}; verify_runs reads manifests of schema {SCHEMA} "
            "(experiments/record.py)"
        )
    try:
        return Manifest.from_dict(obj, p).to_dict()
    except RecordError as e:
        raise NotARun(str(e)) from None


def differences(manifests: dict[str, dict], allow: set[str] = frozenset()) -> dict[str, dict]:
    """field -> {installed run: value} for every comparable field whose values differ."""
    out = {}
    for name, dotted in COMPARABLE_FIELDS.items():
        if name in allow:
            continue
        values = {run: get_field(m, dotted) for run, m in manifests.items()}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            out[name] = values
    return out


def problems(manifests: dict[str, dict], allow: set[str] = frozenset()) -> list[str]:
    """Per-run issues that make an installed run unpublishable on its own."""
    out = []
    for run, m in manifests.items():
        if "commit" not in allow and not get_field(m, "git.commit"):
            out.append(f"{run}: git commit unknown")
        if "dirty tree" not in allow and get_field(m, "git.dirty"):
            out.append(f"{run}: ran from a dirty tree (uncommitted changes)")
    return out


def inputs_table(manifests: dict[str, dict]) -> list[tuple[str, str, dict[str, str | None]]]:
    """(run, verdict, {installed run: digest or None}) for every run any manifest lists:
    verdict "same" (every installed run has it with one digest), "differs" or "missing"."""
    names = sorted({run for m in manifests.values() for run in m["runs"]})
    rows = []
    for name in names:
        digests = {path: m["runs"].get(name) for path, m in manifests.items()}
        if None in digests.values():
            verdict = "missing"
        else:
            verdict = "same" if len(set(digests.values())) == 1 else "differs"
        rows.append((name, verdict, digests))
    return rows


def print_inputs(manifests: dict[str, dict]) -> None:
    rows = inputs_table(manifests)
    same = sum(verdict == "same" for _, verdict, _ in rows)
    print(f"inputs: {same} of {len(rows)} runs have the same inputs digest in every installed run")
    for name, verdict, digests in rows:
        print(f"  {name}: {verdict}")
        for path, digest in digests.items():
            print(f"    {path}: {digest or '(not in this run)'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="installed run directories (or manifest.json files)")
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
    try:
        manifests = {r: load_manifest(os.path.join(base, r)) for r in args.runs}
    except (NotARun, ResultsError) as e:
        print(f"verify_runs: {e}", file=sys.stderr)
        return 2
    diff = differences(manifests, set(args.allow))
    probs = problems(manifests, set(args.allow))
    if not diff and not probs:
        print(f"comparable: {len(manifests)} runs agree on {len(COMPARABLE_FIELDS)} fields")
    if diff:
        print(f"not comparable: {len(diff)} field(s) differ: {', '.join(diff)}")
        for field, values in diff.items():
            print(f"  {field} ({COMPARABLE_FIELDS[field]}):")
            for run, v in values.items():
                print(f"    {run}: {v}")
    for p in probs:
        print(f"refused: {p}")
    print_inputs(manifests)
    return 1 if diff or probs else 0


if __name__ == "__main__":
    sys.exit(main())
