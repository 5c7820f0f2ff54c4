"""`bazel run //experiments:<experiment>`: install the built results into the checkout.

By the time this runs, Bazel has built every run of the experiment (training
what was missing) and its report (experiments/defs.bzl). This program copies
them into `results/<experiment>/<run_id>/` of the checkout:

  summary.md, summary.json, val_curves.csv, plots/   the report (experiments/report.py)
  runs/<run>/result.json, metrics.jsonl, log.txt, model.pt, spec.json   each run's record
  manifest.json   the checkout's git commit and dirty flag, the command, the
                  settings and declarations, every run's inputs digest, and
                  the machines and versions the runs were made with

then prints the failing research checks and the Steps table, and mirrors the
records to the tracker (--tracker). The run id comes from the report: the
same runs always install into the same directory, and a rerun with nothing
changed rewrites nothing but the manifest's list of invocations. Files are
linked from Bazel's output tree where the filesystem allows, else copied,
each atomically.

Flags after `--` are the installer's: --results-dir DIR, --run-id ID,
--strict (exit 1 when a research check fails). The run's own settings are
build settings, given before `--` (`--steps=0,8`); given after it, they are
refused with one line saying so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from experiments import provenance
from experiments.record import Manifest, RecordError, RunResult, Summary
from experiments.results import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    command_line,
    exit_on_results_error,
    read_json,
    utc_now,
    workspace_dir,
)
from experiments.run_profile import Profile

# Flags of the old command lines: where each went.
MOVED = ("profile", "steps", "seeds", "seed", "iters", "time", "tracker")
GONE = {
    "on-failure": "a failed run is recorded and the build goes on; Bazel's --keep_going "
    "goes on after a run that could not run",
    "gpu": "a GPU profile takes the GPUs it trains on (experiments/store.py DeviceLock)",
    "compile": "the profile decides (experiments/profiles.bzl)",
    "no-compile": "the profile decides (experiments/profiles.bzl)",
    "checkpoint-interval": "the profile decides (experiments/profiles.bzl)",
    "no-progress": "runs log to their log.txt; Bazel shows the running ones",
    "list": "`bazel run //experiments:list_steps -- <experiment>` lists the steps",
}
RUN_FILES = ("result.json", "metrics.jsonl", "log.txt", "model.pt", "spec.json", "inputs.txt")


class InstallError(Exception):
    """The results cannot be installed; the message is one line."""


def read_record(cls, path: str):
    """The record of class `cls` in the file at `path`; a damaged one raises naming the file."""
    return cls.from_dict(read_json(path), path)


def refuse_old_flags(argv: list[str], target: str) -> str | None:
    """One line for a run setting or removed flag given after `--`, or None."""
    for i, arg in enumerate(argv):
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
        if name in MOVED:
            following = argv[i + 1] if i + 1 < len(argv) else "VALUE"
            value = arg.split("=", 1)[1] if "=" in arg else following
            return (
                f"--{name} is a build setting now: give it before `--`, as in "
                f"`bazel run {target} --{name}={value}` (experiments/README.md)"
            )
        if name in GONE:
            return f"--{name} is gone: {GONE[name]}"
    return None


def parse_args(argv: list[str]):
    """The launcher's `--experiment FILE --report DIR`, then the user's flags; the flags it
    does not know, so that an old run setting gets its own line (refuse_old_flags)."""
    ap = argparse.ArgumentParser(
        prog="bazel run //experiments:<experiment> --",
        description=__doc__.splitlines()[0],
    )
    ap.add_argument("--experiment", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--report", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--results-dir", help="results root (default: <checkout>/results)")
    ap.add_argument("--run-id", help="install under this run id instead of the derived one")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a research check fails")
    return ap.parse_known_args(argv)


def same_file(src: str, dest: str) -> bool:
    try:
        a, b = os.stat(src), os.stat(dest)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) or (
        a.st_size == b.st_size and a.st_mtime_ns <= b.st_mtime_ns and _equal(src, dest)
    )


def _equal(a: str, b: str) -> bool:
    if os.path.getsize(a) > 64 << 20:
        return True  # weights: size and age agree, and result.json's digest was compared
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def place(src: str, dest: str) -> bool:
    """Puts `src` at `dest` (a hard link where possible, else a copy), atomically;
    False when `dest` already holds it."""
    if same_file(src, dest):
        return False
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = f"{dest}.{os.getpid()}.tmp"
    try:
        os.link(src, tmp)
        os.replace(tmp, dest)
    except OSError:
        if os.path.exists(tmp):
            os.unlink(tmp)
        with open(src, "rb") as f:
            atomic_write(dest, lambda out: shutil.copyfileobj(f, out))
    return True


def common(values: list[dict]) -> dict:
    """One dict of the runs' machines (or versions): a value where every run agrees,
    "mixed: a; b" where they differ."""
    keys = sorted({k for v in values for k in v})
    out = {}
    for k in keys:
        seen = sorted({repr(v.get(k)) for v in values})
        vals = [v.get(k) for v in values]
        out[k] = vals[0] if len(seen) == 1 else "mixed: " + "; ".join(str(s) for s in seen)
    return out


def train_section(decl: dict, results: list[RunResult]) -> dict:
    """The settings tools/verify_runs compares (record.py COMPARABLE_FIELDS' train.*)."""
    s = decl["settings"]
    profile = Profile.from_declaration(decl["profile"], decl["profile_declaration"])
    profile = profile.overridden(s["iters"] or None, s["time"] or None)
    t = profile.train
    datasets = sorted({r.built.get("dataset") for r in results if r.built.get("dataset")})
    return {
        "effective_batch_tokens": profile.effective_batch_tokens,
        "effective_batch": profile.effective_batch,
        "max_iters": t.max_iters,
        "time_budget_s": t.time_budget_s,
        "compile": t.compile,
        "dataset": ",".join(datasets) or None,
        "eval_protocol": f"{t.eval_iters} batches of {t.batch_size}x{profile.block_size} "
        f"every {t.eval_interval} iters",
        "dtype": t.dtype,
        "seed": s["seed"],
        "seeds": [s["seed"] + i for i in range(s["seeds"])],
    }


def manifest_for(decl, summary, results, root, argv, existing) -> dict:
    """manifest.json of this installation; an existing one keeps its creation time and
    gains this invocation."""
    git = provenance.git_state(root)
    now = utc_now()
    command = command_line(decl["target"], decl["flags"], argv)
    m = Manifest(
        experiment=decl["experiment"],
        run_id=summary.run_id,
        created_utc=(existing or {}).get("created_utc", now),
        command=command,
        git=git,
        versions=common([r.provenance.get("versions", {}) for r in results]),
        machine=common([r.provenance.get("machine", {}) for r in results]),
        train=train_section(decl, results),
        config={
            "profile": decl["profile_declaration"] | {"name": decl["profile"]},
            "settings": decl["settings"],
            "steps": decl["steps"],
            "reference": decl["reference"],
        },
        runs={r.run: r.inputs_sha256 for r in results},
        invocations=(existing or {}).get("invocations", []) + [{"time": now, "git": git}],
    )
    return m.to_dict()


def install(decl: dict, report_dir: str, dest: str, argv: list[str]) -> tuple[Summary, int]:
    """Places the report and every run's record under `dest`; returns the summary and how
    many files were written."""
    summary = read_record(Summary, os.path.join(report_dir, "summary.json"))
    results = [read_record(RunResult, os.path.join(r["dir"], "result.json")) for r in decl["runs"]]
    existing = read_json(os.path.join(dest, "manifest.json"))
    if existing and existing.get("runs") != {r.run: r.inputs_sha256 for r in results}:
        raise InstallError(
            f"{dest} holds other runs (its manifest.json lists other inputs digests); install "
            "under another --run-id, or remove it"
        )
    written = 0
    for r in decl["runs"]:
        for name in RUN_FILES:
            src = os.path.join(r["dir"], name)
            if os.path.exists(src):
                written += place(src, os.path.join(dest, "runs", r["run"], name))
    for dirpath, _, files in os.walk(report_dir):
        for name in files:
            src = os.path.join(dirpath, name)
            rel = os.path.relpath(src, report_dir)
            if rel != "summary.md":
                written += place(src, os.path.join(dest, rel))
    m = manifest_for(decl, summary, results, workspace_dir(), argv, existing)
    atomic_write_json(os.path.join(dest, "manifest.json"), m)
    body = open(os.path.join(report_dir, "summary.md"), encoding="utf-8").read()
    atomic_write_text(os.path.join(dest, "summary.md"), with_commit(body, m["git"]))
    return summary, written


def with_commit(body: str, git: dict) -> str:
    """summary.md: the report's, with the commit it was installed from under the title."""
    title, _, rest = body.partition("\n\n")
    dirty = " (dirty tree)" if git.get("dirty") else ""
    return f"{title}\n\nInstalled from commit `{git.get('commit')}`{dirty}.\n\n{rest}"


def verdict(summary_md: str) -> str:
    """What the run prints: the failing checks, then the Steps table (or the first table)."""
    keep, section = [], None
    for line in summary_md.splitlines():
        if line.startswith("## "):
            section = line[3:]
        if line.startswith("**") and "research checks failed" in line:
            section = "failing"
        if section in ("failing", "Steps") or (section is None and line.startswith("|")):
            keep.append(line)
    if not keep:  # a report without tables (bench_decode): all of it but the title
        keep = summary_md.split("\n\n", 2)[-1].splitlines()
    return "\n".join(keep).strip()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, unknown = parse_args(argv)
    decl = read_json(args.experiment)
    user_argv = argv[4:]  # after the launcher's --experiment FILE --report DIR
    line = refuse_old_flags(user_argv, decl["target"])
    if unknown and not line:
        accepted = "--results-dir, --run-id, --strict"
        line = f"unrecognized arguments: {' '.join(unknown)}; accepted: {accepted}"
    if line:
        print(f"knlp: {line}", file=sys.stderr)
        return 2
    root = args.results_dir or os.path.join(workspace_dir(), "results")
    try:
        summary = read_record(Summary, os.path.join(args.report, "summary.json"))
        dest = os.path.join(root, decl["experiment"], args.run_id or summary.run_id)
        summary, written = install(decl, args.report, dest, user_argv)
    except (InstallError, RecordError) as e:
        print(f"knlp: {e}", file=sys.stderr)
        return 2
    print(verdict(open(os.path.join(dest, "summary.md"), encoding="utf-8").read()))
    print(f"\n{decl['experiment']}: results in {dest} ({written} files written)", file=sys.stderr)
    mirror(decl, dest)
    if not summary.complete:
        return 1
    return 1 if args.strict and any(not c["ok"] for c in summary.checks) else 0


def mirror(decl: dict, dest: str) -> None:
    """Copies the runs' records to the tracker the --tracker setting names, once per run."""
    from experiments.tracking import mirror_runs

    mirror_runs(decl["settings"]["tracker"], decl["experiment"], dest)


if __name__ == "__main__":
    sys.exit(exit_on_results_error(main))
