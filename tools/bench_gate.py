"""Benchmark the dry-run gate as a researcher meets it: cold, warm no-op, edit to verdict.

    bazel run //tools:bench_gate -- --baseline COMMIT [--commit HEAD] [--runs 3]
        [--cases all | cold,noop,layers,trainer,scores,texgen] [--out DIR] [--smoke]

It clones the commit under test ("this") and the baseline commit into a scratch
directory, each with its own Bazel output root and server (nested Bazel, as in
containers/cache/nested.py), both sharing this machine's venv root
(--repo_env=KNLP_VENV_ROOT) and Bazel's repository cache: "cold" builds no venv
and downloads nothing. It refuses to start when a tree's venv is missing or an
edit's line is not in a tree. Then, run by run, in both trees:

  * cold: `bazel test //...` in a fresh output root (the server's start and
    Bazel's extraction of itself included, as for a new clone);
  * noop: `bazel test //...` again with nothing changed;
  * one case per edit in tools/bench_gate_plan.py (EDITS): a one-line change
    of a source file, then `bazel test //...`. The runs alternate between the
    edit and its revert, both one-line changes of the same file; the file is
    restored after the case.

The trees take turns, the order swapped each run, so that a change of the
machine's load falls on both. Every sample prints the load average before and
after it; a loaded machine shows there. The end is a table of medians (of
--runs) with the ratio to the baseline, the test targets each run ran (from
the build event file), every test over 10 s in the full build and the budgets
of the slowest tests (tools/bench_gate_plan.py, tools/bench_gate_report.py).
Without "cold" in --cases, one untimed full build ("prime") readies each tree.
--smoke runs every case once on //paper/render/... to check the mechanics in a
few minutes; its figures say nothing about the gate.
"""

import argparse
import contextlib
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from containers.cache import nested
from experiments import results
from tools import bench_gate_plan as plan
from tools import bench_gate_report as report
from tools import ci_summary
from tools.bazel import venv

# A nested server left behind by a killed benchmark exits after this; longer than
# any command of the other tree, so a warm server never times out between samples.
IDLE_S = 3 * 3600
SMOKE_TARGETS = ("//paper/render/...",)
SERVER_START = "Starting local Bazel server"  # a warm sample that shows it was not warm


class BenchError(Exception):
    """The benchmark cannot go on; the message says what failed and where."""


def git(cwd, *args):
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"git {' '.join(args)} in {cwd} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def resolve(source, commit, flag):
    """The full sha of `commit` in the repository at `source`."""
    try:
        return git(source, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    except BenchError:
        raise BenchError(f"{flag} {commit!r}: not a commit of {source}") from None


def clone(source, sha, dest):
    """A checkout of `sha` at `dest`; objects are borrowed from `source` (git --shared)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    git(dest.parent, "clone", "--quiet", "--shared", "--no-checkout", str(source), str(dest))
    git(dest, "checkout", "--quiet", "--detach", sha)


def find_venv(workspace, root):
    """The complete venv for the tree's lock under `root`, or BenchError."""
    lock = Path(workspace) / plan.LOCK
    if not lock.is_file():
        raise BenchError(f"{workspace}: no lock {plan.LOCK}, so its venv cannot be found")
    sha = venv.sha256_file(lock)
    for candidate in sorted(Path(root).glob(f"venv-{sha[:16]}-py*")):
        marker = candidate / venv.MARKER
        if marker.is_file() and marker.read_text().strip() == sha:
            return candidate
    raise BenchError(
        f"{workspace}: no complete venv for {plan.LOCK} (sha256 {sha[:16]}...) under {root}. "
        "'cold with the venv present' needs it: build it first (./setup.sh, then any "
        "`bazel build` in a checkout of that commit) or point KNLP_VENV_ROOT at the root "
        "that holds it"
    )


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


class Tree:
    """One clone at one commit, with its own Bazel output root, server and logs."""

    def __init__(self, name, sha, workspace, user_root, flags, targets, logs, timeout):
        self.name, self.sha, self.workspace = name, sha, Path(workspace)
        self.user_root, self.flags, self.targets = Path(user_root), list(flags), list(targets)
        self.logs, self.timeout, self.count = Path(logs), timeout, 0

    def startup(self):
        return [
            nested.find_bazel(),
            "--nohome_rc",
            f"--output_user_root={self.user_root}",
            f"--max_idle_secs={IDLE_S}",
        ]

    def bazel(self, command, args, timeout):
        """(exit code, output, seconds) of one client command; a timeout stops the build."""
        env = nested.bazel_env(self.user_root / "home")
        argv = self.startup() + [command] + list(args)
        start = time.monotonic()
        proc = subprocess.Popen(
            argv,
            cwd=self.workspace,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # Bazel cancels the build on SIGINT
            try:
                out, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            raise BenchError(
                f"{self.name}: `bazel {command}` ran over {timeout} s in {self.workspace}:\n"
                + (out or "")[-3000:]
            ) from None
        return proc.returncode, out, time.monotonic() - start

    def server_pids(self):
        pids = []
        for pid_file in self.user_root.glob("*/server/server.pid.txt"):
            try:
                pids.append(int(pid_file.read_text().strip()))
            except (OSError, ValueError):
                continue
        return pids

    def shutdown(self):
        """Stops this tree's server (and only it: the pid in its own output base)."""
        if not self.user_root.exists():
            return
        try:
            self.bazel("shutdown", [], timeout=120)
        except BenchError:
            for pid in self.server_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def reset(self):
        """A fresh output root: the next command starts as in a new clone."""
        self.shutdown()
        nested.remove_output_root(self.user_root)

    def read(self, rel):
        return (self.workspace / rel).read_text()

    def write(self, rel, text):
        """Replaces a source file atomically, keeping its mode."""
        path = self.workspace / rel
        mode = path.stat().st_mode
        results.atomic_write_text(str(path), text)
        path.chmod(mode)

    def gate(self, case, kind, run):
        """One `bazel test` of the targets: a sample (see tools/bench_gate_report.py)."""
        self.count += 1
        stem = f"{self.count:03d}-{case}-{kind}-{run}"
        bep = self.user_root.parent / "events" / f"{stem}.json"
        bep.parent.mkdir(parents=True, exist_ok=True)
        bep.unlink(missing_ok=True)
        before = loadavg()
        rc, out, seconds = self.bazel(
            "test", self.targets + self.flags + [f"--build_event_json_file={bep}"], self.timeout
        )
        after = loadavg()
        log = self.logs / f"{self.name}-{stem}.log"
        results.atomic_write_text(str(log), out)
        try:
            events = ci_summary.read_events(bep)
        except (OSError, json.JSONDecodeError):
            events = []
        runs = report.test_runs(events)
        return {
            "tree": self.name,
            "commit": self.sha,
            "case": case,
            "kind": kind,
            "run": run,
            "seconds": round(seconds, 3),
            "exit_code": rc,
            "verdict": verdict(rc, events),
            "reran": report.reran(runs),
            "test_seconds": {k: round(r.seconds, 3) for k, r in runs.items() if r.ran},
            "load_before": before,
            "load_after": after,
            "bazel_elapsed": bazel_line(out, "Elapsed time: "),
            "critical_path": bazel_line(out, "Critical Path: "),
            "server_started": SERVER_START in out,
            "log": str(log),
        }


def bazel_line(output, key):
    """The value after `key` on Bazel's last line holding it ('12.3s'), or None.

    Bazel ends a build with `INFO: Elapsed time: 51.4s, Critical Path: 40.0s`.
    """
    found = [line.split(key, 1)[1] for line in output.splitlines() if key in line]
    return found[-1].split(",")[0].strip() if found else None


def verdict(rc, events):
    """'pass', or what failed: the failed test targets or the build's exit code."""
    if rc == 0:
        return "pass"
    runs = report.test_runs(events)
    failed = sorted(k for k, r in runs.items() if r.status not in ci_summary.PASSING)
    if rc == 3 and failed:
        shown = ", ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
        return f"FAILED {shown}"
    return f"FAILED: bazel exited {rc}" + (" (no test ran)" if rc == 4 else "")


def measure(trees, cases, runs, say=print, samples=None):
    """Every sample of `cases` in `trees`, `runs` of each (see the module's docstring).

    Each sample is appended to `samples` as it is taken, so a caller keeps what
    was measured when a later command fails.
    """
    samples = [] if samples is None else samples

    def take(tree, case, kind, run):
        sample = tree.gate(case, kind, run)
        samples.append(sample)
        say(report.describe(sample))
        if kind in ("cold", "prime") and sample["verdict"] != "pass":
            raise BenchError(
                f"{tree.name} ({tree.sha[:12]}): the full build did not pass "
                f"({sample['verdict']}); Bazel stops at the first failure, so no figure "
                f"of this tree means anything. The benchmark measures a green gate; "
                f"see {sample.get('log')}"
            )

    def turns(run):
        return trees if run % 2 else list(reversed(trees))

    if "cold" in cases:
        for run in range(1, runs + 1):
            for tree in turns(run):
                tree.reset()
                take(tree, "cold", "cold", run)
    else:
        for tree in trees:
            tree.reset()
            take(tree, "cold", "prime", 0)
    if "noop" in cases:
        for run in range(1, runs + 1):
            for tree in turns(run):
                take(tree, "noop", "noop", run)
    edits = [case for case in cases if case in plan.EDITS]
    for case in edits:
        edit_case(trees, plan.EDITS[case], runs, take, turns, last=case == edits[-1])
    return samples


def edit_case(trees, edit, runs, take, turns, last):
    """The timed runs of one edit in every tree; each file is restored, whatever happens.

    When the runs leave the file edited, an untimed run ("settle") brings the
    tree back to its original state for the next case; after the last case the
    file is restored without it.
    """
    original = {tree.name: tree.read(edit.path) for tree in trees}
    edited = {t.name: plan.apply_edit(original[t.name], edit, t.name) for t in trees}
    kinds, settle = plan.edit_schedule(runs)
    try:
        for run, kind in enumerate(kinds, 1):
            for tree in turns(run):
                tree.write(edit.path, (edited if kind == "edit" else original)[tree.name])
                take(tree, edit.case, kind, run)
        if settle and not last:
            for tree in trees:
                tree.write(edit.path, original[tree.name])
                take(tree, edit.case, "settle", runs + 1)
    finally:
        for tree in trees:
            if tree.read(edit.path) != original[tree.name]:
                tree.write(edit.path, original[tree.name])


def preflight(trees, cases, venv_root):
    """Refuses before any measurement: a missing venv, an edit that does not apply."""
    found = {}
    for tree in trees:
        found[tree.name] = str(find_venv(tree.workspace, venv_root))
        for case in cases:
            if case in plan.EDITS:
                edit, where = plan.EDITS[case], f"{tree.name} ({tree.sha[:12]})"
                if not (tree.workspace / edit.path).is_file():
                    raise plan.PlanError(f"{where} has no file {edit.path} (edit {case!r})")
                plan.apply_edit(tree.read(edit.path), edit, where)
    return found


def default_repository_cache():
    return Path.home() / ".cache" / "bazel" / f"_bazel_{getpass.getuser()}" / "cache" / "repos"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", required=True, help="the commit to compare with")
    parser.add_argument("--commit", default="HEAD", help="the commit under test (HEAD)")
    parser.add_argument("--runs", type=int, default=None, help="samples per case (3)")
    parser.add_argument("--cases", default="all", help=f"all, or some of {','.join(plan.CASES)}")
    parser.add_argument("--out", help="write results.json, table.md and every command's log here")
    parser.add_argument(
        "--smoke", action="store_true", help=f"one run of each case on {SMOKE_TARGETS[0]}"
    )
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per bazel command")
    parser.add_argument("--repository-cache", default=str(default_repository_cache()))
    parser.add_argument(
        "--venv-root",
        default=str(venv.default_root()),
        help="the venv root both trees share (KNLP_VENV_ROOT, else ~/.cache/knlp)",
    )
    parser.add_argument("--scratch", help="where the clones go (a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the clones and output roots")
    parser.add_argument("--source", default=os.environ.get("BUILD_WORKSPACE_DIRECTORY"))
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.smoke else 3
    try:
        args.cases = plan.parse_cases(args.cases)
        plan.edit_schedule(args.runs)
    except plan.PlanError as e:
        parser.error(str(e))
    if args.timeout < 1:
        parser.error(f"--timeout {args.timeout}: must be a positive number of seconds")
    return args


def nested_flags(venv_root, repository_cache, say):
    flags = [f"--repo_env=KNLP_VENV_ROOT={venv_root}", "--color=no", "--curses=no"]
    if repository_cache and Path(repository_cache).is_dir():
        flags.append(f"--repository_cache={repository_cache}")
    else:
        say(f"note: no repository cache at {repository_cache!r}: cold runs download")
    return flags


def run(args, say=print):
    source = Path(args.source or Path(__file__).resolve().parents[1]).resolve()
    shas = {
        "this": resolve(source, args.commit, "--commit"),
        "baseline": resolve(source, args.baseline, "--baseline"),
    }
    if git(source, "status", "--porcelain", "--untracked-files=no"):
        say(f"note: {source} has uncommitted changes; the benchmark measures commits only")
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="knlp-bench-gate-"))
    out = Path(args.out).resolve() if args.out else scratch / "out"
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    targets = SMOKE_TARGETS if args.smoke else ("//...",)
    flags = nested_flags(args.venv_root, args.repository_cache, say)
    heading = (
        f"bench_gate: this {shas['this'][:12]} ({args.commit}) against baseline "
        f"{shas['baseline'][:12]} ({args.baseline}); `bazel test {' '.join(targets)}`; "
        f"medians of {args.runs}; {os.cpu_count()} cores"
    )
    record = {
        "commits": shas,
        "cases": list(args.cases),
        "runs": args.runs,
        "targets": list(targets),
        "flags": flags,
        "cpu_count": os.cpu_count(),
        "budgets": plan.BUDGETS,
        "edits": {case: vars(e) for case, e in plan.EDITS.items()},
        "samples": [],
        "error": None,
    }
    trees = []
    try:
        for name, sha in shas.items():
            workspace = scratch / name / "knlp"
            clone(source, sha, workspace)
            root = scratch / name / "root"
            trees.append(Tree(name, sha, workspace, root, flags, targets, logs, args.timeout))
        record["venvs"] = preflight(trees, args.cases, args.venv_root)
        say(heading)
        measure(trees, args.cases, args.runs, say, record["samples"])
    except BaseException as e:
        record["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        for tree in trees:
            tree.shutdown()
        if not args.keep:
            for tree in trees:
                nested.remove_output_root(tree.user_root)
            for name in shas:
                shutil.rmtree(scratch / name, ignore_errors=True)
            if args.out and not args.scratch:
                with contextlib.suppress(OSError):
                    scratch.rmdir()  # empty: the results went to --out
        table = write_record(out, record, heading)
        say(
            f"{'partial results' if record['error'] else 'wrote'}: {out / 'table.md'}, "
            f"{out / 'results.json'}; logs in {logs}"
        )
    say("")
    say(table)
    return record


def write_record(out, record, heading):
    """table.md and results.json under `out`, from what was measured so far."""
    samples, cases = record["samples"], record["cases"]
    record["rows"] = report.summary_rows(samples, cases)
    table = report.render(samples, cases, heading)
    results.atomic_write_text(str(out / "table.md"), table)
    results.atomic_write_json(str(out / "results.json"), record)
    return table


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except (BenchError, plan.PlanError, nested.NestedBazelError) as e:
        print(f"bench_gate: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
