"""Benchmark the workspace itself: how fast the dry-run gate is to run and to reuse.

    python3 tools/bench_workspace.py [--layouts external,runfiles] [--repeat 5]

For each venv layout (tools/bazel/python.bzl) it clones the current commit into
a scratch directory and measures, with its own Bazel output base:

  * cold: `bazel test //...` in the fresh clone, with a fresh venv root, so the
    venv is built too (the first run after ./setup.sh);
  * cold, venv present: the same after `bazel clean --expunge`;
  * warm no-op: `bazel test //...` again with nothing changed (median);
  * one torch test: `//third_party/python:torch_test` re-run with
    --nocache_test_results (median of the whole command and of the test
    action itself);
  * cross-checkout: a second clone in another directory, sharing only a disk
    cache with the first, builds and tests everything; the hit count shows
    whether any action key holds an absolute path.

It prints a table; figures vary with machine load, so quote medians.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TORCH_TEST = "//third_party/python:torch_test"


def sh(cmd, cwd, env=None, check=True):
    start = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    elapsed = time.monotonic() - start
    if check and proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-3000:]}")
    return elapsed, proc.stdout


def clone(source, dest):
    subprocess.run(["git", "clone", "-q", str(source), str(dest)], check=True)


def test_duration(cwd, label):
    """The test action's own duration (seconds) from its test.xml."""
    path = Path(cwd) / "bazel-testlogs" / label.lstrip("/").replace(":", "/") / "test.xml"
    m = re.search(r'time="([0-9.]+)"', path.read_text())
    return float(m.group(1)) if m else float("nan")


def hits(output):
    """(cache hits, actions executed locally, tests reported cached) of a build.

    Bazel's summary line reads e.g. `INFO: 87 processes: 28 disk cache hit,
    59 internal.`; internal processes (symlink trees, test status) are not
    cacheable, so the hits are compared with the processes that actually ran.
    """
    line = re.search(r"INFO: \d+ process(?:es)?: (.*)", output)
    parts = dict(
        (kind.strip(), int(n))
        for n, kind in re.findall(r"(\d+) ([a-z -]+?)(?:,|\.|$)", line.group(1) if line else "")
    )
    hit = sum(n for kind, n in parts.items() if "cache hit" in kind)
    ran = sum(n for kind, n in parts.items() if "cache hit" not in kind and kind != "internal")
    return hit, ran, output.count("(cached) PASSED")


def bench_layout(source, layout, repeat, scratch):
    venv_root = scratch / f"venvs-{layout}"
    bazel = [
        "bazel",
        f"--output_user_root={scratch / ('bazel-' + layout)}",
    ]
    flags = [
        f"--repo_env=KNLP_VENV_LAYOUT={layout}",
        f"--repo_env=KNLP_VENV_ROOT={venv_root}",
    ]
    a = scratch / f"a-{layout}"
    clone(source, a)
    row = {"layout": layout}
    row["cold_with_venv_s"], _ = sh(bazel + ["test", "//...", *flags], a)
    sh(bazel + ["clean", "--expunge"], a)
    row["cold_s"], _ = sh(bazel + ["test", "//...", *flags], a)
    noop = [sh(bazel + ["test", "//...", *flags], a)[0] for _ in range(repeat)]
    row["noop_median_s"] = statistics.median(noop)
    walls, actions = [], []
    for _ in range(repeat):
        walls.append(sh(bazel + ["test", TORCH_TEST, "--nocache_test_results", *flags], a)[0])
        actions.append(test_duration(a, TORCH_TEST))
    row["torch_test_wall_median_s"] = statistics.median(walls)
    row["torch_test_action_median_s"] = statistics.median(actions)

    disk = scratch / f"disk-{layout}"
    b = scratch / f"b-{layout}"
    clone(source, b)
    # Fill the cache from checkout a (clean first: up-to-date actions are
    # not executed, so they would not be stored), then build b from it.
    sh(bazel + ["clean"], a)
    sh(bazel + ["test", "//...", f"--disk_cache={disk}", *flags], a)
    elapsed, out = sh(
        bazel + ["test", "//...", f"--disk_cache={disk}", "--test_summary=short", *flags], b
    )
    hit, ran, cached_tests = hits(out)
    row["second_checkout_s"] = elapsed
    row["second_checkout"] = f"{hit} cache hits, {ran} actions run, {cached_tests} tests cached"
    for ws in (a, b):
        sh(bazel + ["shutdown"], ws, check=False)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", default="external,runfiles")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    source = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", Path(__file__).resolve().parents[1]))
    scratch = Path(tempfile.mkdtemp(prefix="knlp-bench-"))
    rows = []
    try:
        for layout in args.layouts.split(","):
            print(f"measuring layout {layout} ...", flush=True)
            rows.append(bench_layout(source, layout, args.repeat, scratch))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
