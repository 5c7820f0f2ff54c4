"""Format the tree in place: buildifier for Bazel files, black and ruff for Python.

    bazel run //tools:format

The lint test (`lint_test` in every package) checks exactly what this fixes.
"""

import os
import subprocess
import sys
from pathlib import Path

SKIP = {".git", "node_modules", "results"}


def files(root, predicate):
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts and (rel.parts[0] in SKIP or rel.parts[0].startswith("bazel-")):
            continue
        if path.is_file() and predicate(path):
            yield str(path)


def is_bazel(path):
    return path.name in ("BUILD.bazel", "WORKSPACE", "MODULE.bazel") or path.suffix == ".bzl"


def main():
    buildifier = str(Path(sys.argv[1]).resolve())
    root = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."))
    bazel_files = list(files(root, is_bazel))
    py_files = list(files(root, lambda p: p.suffix == ".py"))
    subprocess.run([buildifier, "-lint=fix", "-warnings=-native-py", *bazel_files], check=False)
    subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "-q", *py_files], check=False)
    subprocess.run([sys.executable, "-m", "black", "-q", *py_files], check=False)
    print(f"formatted {len(bazel_files)} Bazel and {len(py_files)} Python files under {root}")


if __name__ == "__main__":
    main()
