"""`lint_test`: buildifier, black and ruff over one package's files, as a test.

Every package calls `lint_test()` once. Each package is checked by its own
cached target, so an edit re-lints only the package it touched.
"""

load("@pip//:requirements.bzl", "requirement")

_BAZEL_FILES = ["BUILD.bazel", "**/BUILD.bazel", "*.bzl", "**/*.bzl", "WORKSPACE", "MODULE.bazel"]

def lint_test(name = "lint", extra_srcs = []):
    """Checks the formatting and lint of every Python and Bazel file in this package.

    Args:
      name: the target name.
      extra_srcs: files that glob cannot see (none usually).
    """

    # bazel-* are the convenience symlinks in the workspace root.
    bazel_files = native.glob(_BAZEL_FILES, exclude = ["bazel-*/**"], allow_empty = True)
    py_files = native.glob(["*.py", "**/*.py"], exclude = ["bazel-*/**"], allow_empty = True)

    # The package's Bazel files, for //tools:architecture_test (visibility by layer).
    native.filegroup(
        name = "bazel_files",
        srcs = bazel_files,
        visibility = ["//tools:__pkg__"],
    )
    native.py_test(
        name = name,
        srcs = ["//tools/bazel:lint_main.py"],
        main = "//tools/bazel:lint_main.py",
        args = ["--buildifier", "$(rootpath %s)" % _BUILDIFIER] +
               ["--bazel=$(rootpath %s)" % f for f in bazel_files] +
               ["--python=$(rootpath %s)" % f for f in py_files + extra_srcs],
        data = bazel_files + py_files + extra_srcs + ["//:pyproject.toml", _BUILDIFIER],
        deps = [requirement("black"), requirement("ruff")],
        python_version = "PY3",
        size = "small",
        tags = ["lint"],
    )

_BUILDIFIER = "@buildifier//:buildifier-linux_amd64"
