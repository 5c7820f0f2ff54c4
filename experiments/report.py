"""The Report action: an experiment's summary from the records of all its runs.

    report --experiment experiment.json --bin-dir bazel-out/<config>/bin --out DIR

experiments/defs.bzl runs this once every run of an experiment is built. It
reads experiment.json (the steps, the runs and where their records are, the
reference: one step or a mapping step -> reference, which report), each
run's result.json and metrics.jsonl, and each dataset's stats.json, and
writes into DIR what the report of its kind writes (REPORTS): summary.md,
summary.json and, for trained experiments, val_curves.csv and plots/. The
run id is derived here from what made the runs, so every machine that
builds the same runs reports the same run id:

    <profile>-<first 8 hex of the sha256 of the experiment and every run's inputs digest>
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sys
from dataclasses import dataclass

from experiments.record import RecordError, RunResult
from experiments.results import exit_on_results_error, read_json, read_jsonl

# report kind -> (module, its write function's extra argument). Each writes into
# the output directory and returns the failed research checks.
REPORTS = {
    "language": ("experiments.summary", "LANGUAGE"),
    "language_pruning": ("experiments.summary", "PRUNED_LANGUAGE"),
    "classifier": ("experiments.summary", "CLASSIFIER"),
    "kv_cache": ("experiments.kv_cache_report", None),
    "decode": ("experiments.decode_report", None),
    "inference": ("experiments.inference_report", None),
}


def run_id(profile: str, experiment: str, results: list[RunResult]) -> str:
    """The run id of a set of runs: the profile and a digest of what made every run."""
    h = hashlib.sha256(experiment.encode())
    for r in sorted(results, key=lambda r: r.run):
        h.update(f"\n{r.run}\t{r.inputs_sha256}".encode())
    return f"{profile}-{h.hexdigest()[:8]}"


@dataclass
class Inputs:
    """What a report reads: the experiment's declaration and every run's record."""

    experiment: str
    profile: str
    reference: str | dict | None  # one step, or step -> reference (experiments.bzl)
    results: list  # RunResult, in run order
    metrics: dict  # run -> metrics.jsonl records
    entropy: float | None  # the dataset's unigram entropy (data/stats.py), if one dataset
    declared: dict  # experiment.json
    run_id: str

    def header(self, done: int, total: int, intro: str) -> list[str]:
        """summary.md's title and first paragraph (the installer adds the commit)."""
        machines = sorted(
            {
                (r.provenance.get("machine", {}).get("gpu") or "")
                or r.provenance.get("machine", {}).get("cpu", "?")
                for r in self.results
            }
        )
        torch = sorted({r.provenance.get("versions", {}).get("torch") or "?" for r in self.results})
        return [
            f"# {self.experiment} / {self.run_id}",
            "",
            f"Profile `{self.profile}`, torch {', '.join(torch)}, trained on "
            f"{'; '.join(machines) or '?'}. {done} of {total} runs done. {intro}",
            "",
        ]


def load(experiment_json: str, root: str = "") -> Inputs:
    """The inputs experiment.json names; its paths are short paths, under `root`."""
    decl = read_json(experiment_json)
    if decl is None:
        raise FileNotFoundError(experiment_json)
    results, metrics = [], {}
    for run in decl["runs"]:
        where = os.path.join(root, run["dir"])
        path = os.path.join(where, "result.json")
        res = RunResult.from_dict(read_json(path), path)
        results.append(res)
        metrics[res.run] = read_jsonl(os.path.join(where, "metrics.jsonl"))
    entropies = [
        read_json(os.path.join(root, path))["unigram_entropy"]
        for path in decl.get("stats", {}).values()
    ]
    return Inputs(
        experiment=decl["experiment"],
        profile=decl["profile"],
        reference=decl.get("reference"),
        results=results,
        metrics=metrics,
        entropy=entropies[0] if len(entropies) == 1 else None,
        declared=decl,
        run_id=run_id(decl["profile"], decl["experiment"], results),
    )


def write(inputs: Inputs, out: str):
    module, arg = REPORTS[inputs.declared["report"]]
    mod = importlib.import_module(module)
    return mod.write(inputs, out, getattr(mod, arg)) if arg else mod.write(inputs, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", required=True, help="experiment.json")
    ap.add_argument("--bin-dir", default="", help="where experiment.json's short paths are")
    ap.add_argument("--out", required=True, help="the report's directory")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    try:
        inputs = load(args.experiment, args.bin_dir)
    except RecordError as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    failed = write(inputs, args.out)
    print(
        f"{inputs.experiment} / {inputs.run_id}: {len(inputs.results)} runs, "
        f"{len(failed)} research checks failed",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_results_error(main))
