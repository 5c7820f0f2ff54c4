"""Check formatting and lint: buildifier for Bazel files, black and ruff for Python.

Called by the `lint_test` macro with the files of one package; also usable by
hand. Prints each problem with the command that fixes it, and exits non-zero if
there is any.
"""

import argparse
import os
import subprocess
import sys


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout.strip()


def check_bazel(buildifier, files):
    if not files:
        return []
    code, out = run([buildifier, "-mode=check", "-lint=warn", "-warnings=-native-py", *files])
    if code == 0:
        return []
    return [f"buildifier:\n{out}\n  fix: bazel run //tools:format"]


def check_python(files):
    if not files:
        return []
    problems = []
    code, out = run([sys.executable, "-m", "black", "--check", "--diff", "-q", *files])
    if code != 0:
        problems.append(f"black would reformat:\n{out}\n  fix: bazel run //tools:format")
    code, out = run([sys.executable, "-m", "ruff", "check", "--no-cache", *files])
    if code != 0:
        problems.append(f"ruff:\n{out}\n  fix: bazel run //tools:format (then fix what remains)")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildifier", required=True)
    parser.add_argument("--bazel", action="append", default=[])
    parser.add_argument("--python", action="append", default=[])
    args = parser.parse_args(argv)
    os.environ.setdefault("HOME", os.environ.get("TEST_TMPDIR", "/tmp"))
    problems = check_bazel(args.buildifier, args.bazel) + check_python(args.python)
    for problem in problems:
        print(problem, end="\n\n")
    checked = len(args.bazel) + len(args.python)
    print(f"lint: {checked} files, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
