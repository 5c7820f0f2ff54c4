"""Mutation score of the core Python, with mutmut: a benchmark, not part of the gate.

    bazel run //tools:mutation                                  # the whole core (hours)
    bazel run //tools:mutation -- experiments/results.py        # one file
    bazel run //tools:mutation -- pruning --max-mutants 100     # a sample per file
    bazel run //tools:mutation -- experiments/trainer.py \\
        --tests experiments/trainer_test.py --ignore-test experiments/equivalence_test.py

Targets are files or package directories relative to the repository root; the
default is the core of issue 18 (DEFAULT_TARGETS; its experiments/results.py is
now results.py, record.py and provenance.py). The tree (tracked files and
untracked ones git does not ignore) is copied into a work directory, mutmut
runs there with one worker, and the tests it runs for a file are the *_test.py
files next to it unless --tests names others. --max-mutants N checks N mutants
per file, evenly spaced over mutmut's list, so a sample covers every function.
--ignore-test leaves a test file out, for a before/after comparison. Tests
that read prepared data find it through bazel-bin: build it first (for the
trainer's tests, `bazel build //data:shakespeare`); data/'s tests also need the
GPT-2 BPE files: `bazel fetch @gpt2_bpe//:files`, then KNLP_GPT2_BPE_DIR set to
$(bazel info output_base)/external/gpt2_bpe. kernels/ops.py's CPU tests need the
emulation library (`bazel build //kernels:libdecode_emu.so`, then
KNLP_KERNELS_LIB_DIR set to $(bazel info bazel-bin)/kernels) and run with
--tests kernels/reference_test.py kernels/reference_edges_test.py
kernels/emulation_test.py (codec_test, compile_test, sass_test and gpu_test need
nvcc, hipcc or a GPU).

Per file it prints the mutants checked, killed (a test failed, or the mutant
timed out), survived (including "no tests": no test reached the code),
equivalent (survivors listed in tools/mutation_equivalent.txt) and the score,
killed / (checked - equivalent); then the surviving mutants by name. The work
directory is kept: `python -m mutmut show NAME` there prints a mutant's diff.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_TARGETS = (
    "models/gpt2",
    "pruning",
    "experiments/trainer.py",
    "experiments/results.py",
    "experiments/record.py",
    "experiments/provenance.py",
    "data",
)
EQUIVALENT = Path(__file__).resolve().with_name("mutation_equivalent.txt")
KILLED = {"killed", "timeout", "segfault", "caught by type check"}
UNDETECTED = {"survived", "no tests", "suspicious"}
NO_MATCH = "no_mutant_is_named_like_this*"  # a filter that makes `run` only generate


def repo_root() -> Path:
    return Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())).resolve()


def source_files(root: Path, target: str) -> list[str]:
    """The non-test .py files a target names (a file, or a package directory)."""
    path = root / target
    if path.is_file() and path.suffix == ".py":
        return [target]
    if path.is_dir():
        found = sorted(
            str(p.relative_to(root))
            for p in path.glob("*.py")
            if not p.name.endswith("_test.py") and p.name != "__init__.py"
        )
        if found:
            return found
    raise SystemExit(
        f"mutation: target {target!r} is not a .py file or a directory with .py files "
        "under the repository root; accepted: e.g. experiments/trainer.py, pruning"
    )


def tests_next_to(root: Path, files: list[str]) -> list[str]:
    dirs = sorted({str(Path(f).parent) for f in files})
    return sorted(str(p.relative_to(root)) for d in dirs for p in (root / d).glob("*_test.py"))


def read_equivalent(path: Path = EQUIVALENT) -> dict[str, str]:
    """mutant name -> reason, from lines `name  reason` (# comments allowed)."""
    out = {}
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"mutation: {path.name}:{n}: {name!r} has no reason; one is needed")
        out[name] = reason.strip()
    return out


def copy_tree(root: Path, work: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for rel in filter(None, listed):
        src = root / os.fsdecode(rel)
        if src.is_file():
            dst = work / os.fsdecode(rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def write_config(work: Path, files: list[str], tests: list[str], ignored: list[str]) -> None:
    packages = sorted({f.split("/")[0] for f in files})
    others = sorted(p.name + "/" for p in work.iterdir() if p.is_dir() and p.name not in packages)
    args = ["-p", "no:cacheprovider", "-q"] + [f"--ignore={t}" for t in ignored]
    config = {
        "source_paths": [p + "/" for p in packages],
        "only_mutate": files,
        "pytest_add_cli_args_test_selection": [t for t in tests if t not in ignored],
        "also_copy": others,
        "pytest_add_cli_args": args,
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in config.items()]
    with open(work / "pyproject.toml", "a") as f:
        f.write("\n".join(lines) + "\n")


def mutmut(work: Path, *args: str, check: bool = True) -> int:
    cmd = [sys.executable, "-m", "mutmut", *args]
    # One thread per test process: mutmut limits each mutant's CPU time, which
    # torch's thread pool would use up on a shared machine.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rc = subprocess.run(cmd, cwd=work, env=env).returncode
    if check and rc != 0:
        raise SystemExit(f"mutation: `{' '.join(cmd[2:])}` failed with exit code {rc} in {work}")
    return rc


def meta(work: Path, file: str) -> dict:
    path = work / "mutants" / (file + ".meta")
    if not path.exists():
        raise SystemExit(f"mutation: mutmut made no mutants for {file} (no {path})")
    return json.loads(path.read_text())["exit_code_by_key"]


def sample(names: list[str], cap: int | None) -> list[str]:
    """At most `cap` names, evenly spaced over the sorted list."""
    names = sorted(names)
    if cap is None or cap >= len(names):
        return names
    return [names[i * len(names) // cap] for i in range(cap)]


def score(results: dict, equivalent: dict) -> dict:
    """Counts and score of one file's checked mutants (exit code None: not checked)."""
    from mutmut.stats import status_by_exit_code

    status = {k: status_by_exit_code[v] for k, v in results.items() if v is not None}
    killed = sum(s in KILLED for s in status.values())
    survivors = sorted(k for k, s in status.items() if s in UNDETECTED)
    equiv = [k for k in survivors if k in equivalent]
    live = [k for k in survivors if k not in equivalent]
    denom = len(status) - len(equiv)
    return {
        "checked": len(status),
        "killed": killed,
        "survived": len(survivors),
        "equivalent": len(equiv),
        "score": killed / denom if denom else None,
        "surviving": live,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help="files or package directories (default: the core)")
    ap.add_argument("--max-mutants", type=int, help="check at most N mutants per file")
    ap.add_argument("--tests", nargs="+", help="test files to run (default: those next to it)")
    ap.add_argument("--ignore-test", action="append", default=[], help="leave this test out")
    ap.add_argument("--workdir", help="where to copy the tree (default: a new temp directory)")
    ap.add_argument("--jobs", type=int, default=1, help="mutmut workers (default 1)")
    args = ap.parse_args(argv)
    if args.max_mutants is not None and args.max_mutants < 1:
        ap.error(f"--max-mutants {args.max_mutants}: accepted: an int >= 1")
    root = repo_root()
    files = sorted({f for t in (args.targets or DEFAULT_TARGETS) for f in source_files(root, t)})
    tests = args.tests or tests_next_to(root, files)
    for t in tests + args.ignore_test:
        if not (root / t).is_file():
            raise SystemExit(f"mutation: test file {t!r} does not exist under {root}")
    equivalent = read_equivalent()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="knlp-mutation-"))
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"mutation: --workdir {work} is not empty; accepted: a new or empty one")
    work.mkdir(parents=True, exist_ok=True)
    copy_tree(root, work)
    write_config(work, files, tests, args.ignore_test)
    # Tests find prepared data (the corpora) under bazel-bin next to the tree;
    # mutmut runs them inside work/mutants.
    if (root / "bazel-bin").exists():
        (work / "mutants").mkdir()
        (work / "mutants" / "bazel-bin").symlink_to((root / "bazel-bin").resolve())
    print(f"mutation: {len(files)} files, tests {', '.join(tests)}; work directory {work}")
    jobs = ["--max-children", str(args.jobs)]
    # Generation and the per-test coverage pass; the filter matches nothing, so
    # mutmut stops there (with an error we expect) and no mutant is run yet.
    mutmut(work, "run", *jobs, NO_MATCH, check=False)
    chosen = [n for f in files for n in sample(list(meta(work, f)), args.max_mutants)]
    mutmut(work, "run", *jobs, *(chosen if args.max_mutants else ()))
    report = {f: score(meta(work, f), equivalent) for f in files}
    print(f"\n{'file':40} {'checked':>7} {'killed':>6} {'survived':>8} {'equiv':>5} {'score':>6}")
    for f, r in report.items():
        pct = "-" if r["score"] is None else f"{100 * r['score']:.1f}%"
        print(
            f"{f:40} {r['checked']:7} {r['killed']:6} {r['survived']:8} "
            f"{r['equivalent']:5} {pct:>6}"
        )
    for f, r in report.items():
        if r["surviving"]:
            print(f"\nsurviving in {f} ({len(r['surviving'])}):")
            print("\n".join("  " + n for n in r["surviving"]))
    with open(work / "mutation_report.json", "w") as fh:
        json.dump(report, fh, indent=1)
    print(
        f"\nreport: {work / 'mutation_report.json'}; diffs: cd {work} && python -m mutmut show NAME"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
