"""Benchmark of the 19-step RATIO dry-run (tiny numeric pass + real-size meta pass).

    bazel run //experiments/ablations:bench_dryrun [-- --repeat 3 --no-bazel]

Prints, with medians over --repeat runs:
  in-process   all 19 steps in one fresh Python process (imports included),
               one after the other: the baseline;
  bazel cold   `bazel test //experiments/ablations:dryrun_test` with
               --nocache_test_results and `-k test_dryrun_step`: every step's
               test case runs (in the target's shards, side by side as
               Bazel's jobs allow), build outputs kept;
  bazel warm   the same with nothing changed: every result from the cache;
and, for each model file, how many tests rerun after editing it (from
`bazel query`, the py_test targets that depend on that file).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

IN_PROCESS = """
import time
t = time.perf_counter()
from experiments.ablations import dryrun, registry
reg = registry.get()
for i in reg.step_ids():
    dryrun.dry_run_step(reg, i)
print(time.perf_counter() - t)
"""


# The 19 steps' cases of dryrun_test, without the classes' and the pruners'.
STEPS_ONLY = ["--test_arg=-k", "--test_arg=test_dryrun_step"]


def timed(cmd, **kwargs):
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout


def in_process():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    elapsed, _ = timed([sys.executable, "-c", IN_PROCESS], env=env)
    return elapsed


def bazel(workspace, *args):
    return timed(["bazel", *args], cwd=workspace)


def rerun_counts(workspace):
    out = {}
    _, files = bazel(workspace, "query", "kind('source file', //models/gpt2:*)")
    for label in files.split():
        if label.endswith(".py") and not label.endswith("_test.py"):
            # The fork wheel targets are left out of the universe: their
            # repositories cannot be fetched until forks.lock.json holds full
            # SHAs, and no test depends on them.
            universe = "//... - //third_party/forks/..."
            _, tests = bazel(workspace, "query", f"kind(py_test, rdeps({universe}, {label}))")
            out[label] = len(tests.split())
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-bazel", action="store_true", help="only the in-process baseline")
    args = parser.parse_args(argv)
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")

    base = [in_process() for _ in range(args.repeat)]
    print(f"in-process, 19 steps:  median {statistics.median(base):6.1f} s  {sorted(base)}")
    if args.no_bazel or not workspace:
        if not workspace:
            print("(bazel figures need `bazel run`, which sets BUILD_WORKSPACE_DIRECTORY)")
        return 0
    target = ["//experiments/ablations:dryrun_test", *STEPS_ONLY]
    bazel(workspace, "build", *target)  # build outputs in place; tests not run
    cold = [
        bazel(workspace, "test", "--nocache_test_results", *target)[0] for _ in range(args.repeat)
    ]
    warm = [bazel(workspace, "test", *target)[0] for _ in range(args.repeat)]
    b = statistics.median(base)
    for name, runs in (("bazel cold", cold), ("bazel warm", warm)):
        m = statistics.median(runs)
        print(f"{name}, 19 steps:  median {m:6.1f} s  ({m / b:.2f}x in-process)  {sorted(runs)}")
    print("\ntests rerun after editing one file:")
    for label, n in rerun_counts(workspace).items():
        print(f"  {label}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
