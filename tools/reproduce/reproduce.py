"""Run one decode reproduction stage set: doctor, fetch, build, run, report, upload.

    bazel run //tools/reproduce:decode                       # a new run
    bazel run //tools/reproduce:decode -- --run-id ID        # resume run ID
    bazel run //tools/reproduce:decode-sat -- --list         # the runs so far

Results go to <workspace>/results/decode/<run_id>/ (see pipeline.py for the
layout). Exit status: 0 when every stage completed or was skipped with a
reason and no gate failed, 1 when a stage failed, 2 when a gate failed.
"""

import argparse
import datetime
import json
import os
import re
import sys
from pathlib import Path

from tools.bazel.bzl_data import load_bzl
from tools.reproduce import cell, fork_pins, stages
from tools.reproduce.pipeline import Pipeline, PipelineError

STAGE_SETS_BZL = Path(__file__).resolve().parent / "stage_sets.bzl"
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def load_stage_sets():
    """STAGE_SETS of stage_sets.bzl, every stage set's decode cell checked."""
    stage_sets = load_bzl(STAGE_SETS_BZL)["STAGE_SETS"]
    for name, spec in stage_sets.items():
        try:
            cell.check(spec.get("cell"))
        except cell.CellError as err:
            raise cell.CellError(f"stage set {name}: {err}") from err
    return stage_sets


def results_root(env):
    ws = env.get("BUILD_WORKSPACE_DIRECTORY")
    return (Path(ws) if ws else Path.cwd()) / "results" / "decode"


def new_run_id(stage_set):
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{stage_set}"


def main(argv=None, env=None, stage_functions=None):
    env = dict(os.environ if env is None else env)
    stage_sets = load_stage_sets()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage-set", required=True, choices=sorted(stage_sets))
    parser.add_argument("--run-id", help="resume this run (default: a new run id)")
    parser.add_argument("--results-root", type=Path, help="default: <workspace>/results/decode")
    parser.add_argument("--list", action="store_true", help="list the runs and their stages")
    args = parser.parse_args(argv)
    root = args.results_root or results_root(env)
    spec = stage_sets[args.stage_set]
    if args.list:
        for run_dir in sorted(p for p in root.glob("*") if (p / "manifest.json").exists()):
            done = [s for s in stages.STAGE_FUNCTIONS if (run_dir / "stages" / s / "DONE").exists()]
            print(f"{run_dir.name}  done: {', '.join(done) or 'nothing'}")
        return 0
    run_id = args.run_id or new_run_id(args.stage_set)
    if not RUN_ID.match(run_id):
        parser.error(f"--run-id {run_id!r}: use letters, digits, '.', '_' and '-' (at most 100)")
    if args.run_id and not (root / run_id / "manifest.json").exists():
        print(f"starting run {run_id} (no run of that id under {root})")
    lock = fork_pins.load_lock()
    facts = {
        "forks": fork_pins.fork_pins(spec, lock),
        "gates": [g.__dict__ for g in stages.report_lib.gates.GATES],
    }
    pipeline = Pipeline(
        args.stage_set,
        spec,
        root / run_id,
        stage_functions or stages.STAGE_FUNCTIONS,
        env,
        facts,
        argv=sys.argv[1:] if argv is None else argv,
    )
    try:
        results = pipeline.run()
    except PipelineError as err:
        print(f"knlp: {err}", file=sys.stderr)
        return 1
    for stage, status in results.items():
        reason = status.get("reason") or {}
        print(
            f"{stage:<7} {status['status']:<8} {reason.get('code', '')} {reason.get('detail', '')}"
        )
    print(f"run directory: {root / run_id}")
    if any(s["status"] == "failed" for s in results.values()):
        return 1
    report_json = root / run_id / "report.json"
    if report_json.exists() and json.loads(report_json.read_text())["verdict"] == "fail":
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
