"""`py_pytest_test`: a py_test whose body is pytest.

The test files stay ordinary pytest files, runnable with a plain `pytest` from
the repository root (pyproject.toml puts the root on sys.path). Inside Bazel
the shared runner tools/bazel/pytest_main.py runs pytest on exactly the `srcs`,
writes JUnit XML where Bazel asks for it, and honours `shard_count`.
"""

load("@pip//:requirements.bzl", "requirement")

def py_pytest_test(name, srcs, deps = [], data = [], args = [], **kwargs):
    """A pytest file (or several) as one Bazel test target.

    Args:
      name: the target name.
      srcs: the test files; every one is collected.
      deps: py_library dependencies of the tests.
      data: runtime files the tests read.
      args: extra pytest arguments.
      **kwargs: passed to py_test (size, shard_count, tags, ...).
    """
    native.py_test(
        name = name,
        srcs = srcs + ["//tools/bazel:pytest_main.py"],
        main = "//tools/bazel:pytest_main.py",
        args = ["$(rootpath %s)" % src for src in srcs] + args,
        data = data + ["//:pyproject.toml"],
        deps = deps + [
            "//tools/bazel:pytest_shard",
            requirement("pytest"),
        ],
        python_version = "PY3",
        **kwargs
    )
