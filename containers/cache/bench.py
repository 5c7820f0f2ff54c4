"""Benchmark of the shared cache on the real gate: a cold checkout against a second one.

    bazel run //containers/cache:bench -- [--repeat 3]

For each repetition it copies this worktree (tracked and untracked, not
ignored files) into checkout A and, in another directory, checkout B; starts
an empty nginx cache; runs the gate (`bazel test //...`, minus the tests that
themselves run Bazel) cold in A with `--config=remote-cache-write`, then in B,
with its own output base, with the read-only `--config=remote-cache`. It prints
each run and the medians: A's time, B's time, their ratio, B's remote-cache hit
ratio and how many of B's tests were reported cached. Both checkouts share the
caller's content-addressed Python venv (its venv root, tools/bazel/venv.py,
passed as KNLP_VENV_ROOT since each nested Bazel has its own HOME) and Bazel's
repository cache, as a second checkout on one machine would; everything else is
cold.
"""

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from containers.cache import nested, serve
from tools.bazel import venv

GATE = ["//...", "--test_tag_filters=-gpu,-nested_bazel", "--color=no", "--curses=no"]
GATE += ["--noshow_progress", "--test_summary=short"]


def source_files(root):
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return [f for f in out.decode().split("\0") if f and (Path(root) / f).is_file()]


def checkout(root, files, dest, cache_url, credentials=None):
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(root) / rel, target)
    lines = [f"build:remote-cache --remote_cache={cache_url}"]
    if credentials:
        header = serve.basic_auth_header(*credentials)
        lines.append(f'build:remote-cache-write "--remote_header=Authorization={header}"')
    (dest / ".bazelrc.user").write_text("\n".join(lines) + "\n")
    return dest


def one_round(root, files, work, repository_cache):
    credentials = ("bench", secrets.token_urlsafe(16))
    extra = [f"--repo_env=KNLP_VENV_ROOT={venv.default_root()}"]
    extra += [f"--repository_cache={repository_cache}"] if repository_cache else []
    with serve.CacheServer(work / "cache", users={credentials[0]: credentials[1]}) as cache:
        a = checkout(root, files, work / "a" / "knlp", cache.url, credentials)
        b = checkout(root, files, work / "elsewhere" / "b" / "knlp", cache.url)
        cold = nested.run_bazel(
            a,
            work / "root_a",
            "test",
            GATE + ["--config=remote-cache-write"] + extra,
            work / "a.json",
        )
        warm = nested.run_bazel(
            b, work / "root_b", "test", GATE + ["--config=remote-cache"] + extra, work / "b.json"
        )
        entries = cache.entries()
    tests = warm.tests()
    return {
        "cold_s": round(cold.seconds, 2),
        "cached_s": round(warm.seconds, 2),
        "ratio": round(cold.seconds / warm.seconds, 2),
        "cacheable": len(warm.cacheable),
        "hits": len(warm.hits),
        "hit_ratio": round(warm.hit_ratio, 3),
        "misses": sorted({s.get("progressMessage", "") for s in warm.misses}),
        "tests": len(tests),
        "tests_cached": sum(1 for v in tests.values() if v.startswith("(cached)")),
        "cache_entries": entries,
        "bazel_a": cold.processes_line(),
        "bazel_b": warm.processes_line(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--source", default=os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."))
    parser.add_argument(
        "--repository-cache",
        default=str(Path.home() / ".cache/bazel/_bazel_root/cache/repos"),
        help="Bazel's download cache, shared by both checkouts ('' for none)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the checkouts and logs")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: must be at least 1")
    root = Path(args.source).resolve()
    files = source_files(root)
    repo_cache = (
        args.repository_cache if Path(args.repository_cache or "/nonexistent").is_dir() else ""
    )
    rounds = []
    for i in range(args.repeat):
        work = Path(tempfile.mkdtemp(prefix="knlp-cache-bench-"))
        try:
            result = one_round(root, files, work, repo_cache)
        finally:
            if not args.keep:
                for root_dir in ("root_a", "root_b"):
                    nested.remove_output_root(work / root_dir)
                shutil.rmtree(work, ignore_errors=True)
        rounds.append(result)
        print(f"round {i + 1}: " + json.dumps(result), flush=True)
    med = {
        k: statistics.median(r[k] for r in rounds)
        for k in ("cold_s", "cached_s", "ratio", "hit_ratio")
    }
    print(
        f"median of {len(rounds)}: cold gate {med['cold_s']:.1f} s, second checkout with the "
        f"shared cache {med['cached_s']:.1f} s, ratio {med['ratio']:.2f}x, "
        f"remote-cache hit ratio {med['hit_ratio']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
