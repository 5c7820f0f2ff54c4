"""Check formatting and lint: buildifier for Bazel files, black and ruff for Python.

Called by the `lint_test` macro with the files of one package; also usable by
hand. Prints each problem with the command that fixes it, and exits non-zero if
there is any.
"""

import argparse
import os
import subprocess
import sys
from xml.sax.saxutils import escape


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


def write_junit(path, checked, problems):
    """The JUnit report Bazel asks for, written by the test itself.

    Without it Bazel 4.2.3 generates test.xml in a separate action whose
    arguments include the test's wall time in seconds, which differs between
    machines and makes that action miss the shared cache.
    """
    failure = (
        f'<failure message="{len(problems)} problem(s)">{escape(chr(10).join(problems))}</failure>'
        if problems
        else ""
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites><testsuite name="lint" tests="1" failures="{int(bool(problems))}">'
        f'<testcase classname="lint" name="{checked} files">{failure}</testcase>'
        "</testsuite></testsuites>\n"
    )
    with open(path, "w") as f:
        f.write(xml)


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
    if os.environ.get("XML_OUTPUT_FILE"):
        write_junit(os.environ["XML_OUTPUT_FILE"], checked, problems)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
