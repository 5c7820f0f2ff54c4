"""The pinned Python toolchain: a venv built from a hash-locked requirements file.

`pip_venv` is a repository rule that checks the interpreter version, picks the
lock for the selected accelerator (`--config=cuda` / `--config=rocm` set
`KNLP_ACCELERATOR`), builds a venv with `pip install --require-hashes` through
tools/bazel/venv.py, and generates `@pip` with:

  * `@pip//:python_toolchain`, registered in WORKSPACE, so every `py_binary`
    and `py_test` runs on the venv's interpreter;
  * `@pip//:requirements.bzl` with rules_python's `requirement("numpy")`,
    which fails at load time for a package the lock does not hold;
  * `@pip//:venv_info.json`, read by the doctor and by run manifests.

Two layouts are supported, chosen with `--repo_env=KNLP_VENV_LAYOUT=...`:

  * `external` (default): the venv lives outside the output base at
    `<root>/venv-<hash>`, named by the hash of the lock and the interpreter
    version. The root is the user's own (`KNLP_VENV_ROOT`, else
    `$XDG_CACHE_HOME/knlp`, else `~/.cache/knlp`; tools/bazel/venv.py decides and
    refuses a venv another user could have written). It is referenced through
    `py_runtime(interpreter_path = ...)`. Bazel does not hash the venv's files,
    but the path changes whenever the lock does, so every Python action is
    invalidated by a lock change and by nothing else.
  * `runfiles`: the venv lives inside the repository and its files are the
    runtime's `files`, so Bazel hashes all of them and every test carries them
    in its runfiles and sandbox. Files whose names hold a space (a few scipy
    test data files) are left out: Bazel 4.2.3's runfiles cannot hold them.

README.md ("Design") gives the measured cost of each.
"""

_ACCELERATORS = ["cpu", "cuda", "rocm"]
_LAYOUTS = ["external", "runfiles"]

# What tools/bazel/venv.py derives the default venv root from.
_ROOT_ENV = ["HOME", "KNLP_VENV_ROOT", "XDG_CACHE_HOME"]

def _lock_packages(content):
    """Returns the `name==version` pins of a pip-compile lock, in order."""
    pins = []
    for line in content.splitlines():
        if not line or line[0] in " #-\t":
            continue
        spec = line.split(" ")[0]
        if "==" in spec:
            name, version = spec.split("==", 1)
            pins.append((name.lower().replace("_", "-").replace(".", "-"), version))
    return pins

def _python_version(rctx, interpreter):
    res = rctx.execute([interpreter, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
    if res.return_code != 0:
        fail("knlp: cannot run the Python interpreter %s: %s" % (interpreter, res.stderr))
    return res.stdout.strip()

def _pip_venv_impl(rctx):
    accelerator = rctx.os.environ.get("KNLP_ACCELERATOR", "cpu")
    if accelerator not in _ACCELERATORS:
        fail("knlp: KNLP_ACCELERATOR=%s is not an accelerator; accepted: %s" % (accelerator, ", ".join(_ACCELERATORS)))
    layout = rctx.os.environ.get("KNLP_VENV_LAYOUT", "external")
    if layout not in _LAYOUTS:
        fail("knlp: KNLP_VENV_LAYOUT=%s is not a layout; accepted: %s" % (layout, ", ".join(_LAYOUTS)))

    interpreter = rctx.os.environ.get("KNLP_PYTHON", rctx.attr.interpreter)
    if not rctx.path(interpreter).exists:
        found = None if "/" in interpreter else rctx.which(interpreter)
        if not found:
            fail("knlp: Python interpreter %s not found; install python%s (./setup.sh does) or set KNLP_PYTHON" % (interpreter, rctx.attr.python_version))
        interpreter = str(found)
    version = _python_version(rctx, interpreter)
    if not (version + ".").startswith(rctx.attr.python_version + "."):
        fail("knlp: needs Python %s, but %s is Python %s. Install python%s or point KNLP_PYTHON at it." % (
            rctx.attr.python_version,
            interpreter,
            version,
            rctx.attr.python_version,
        ))

    locks = {acc: label for label, acc in rctx.attr.locks.items()}
    if accelerator not in locks:
        fail(("knlp: there is no lock for accelerator %s. Generate it on a host that reaches its package " +
              "index with `bazel run //third_party/python:lock -- %s`, then list it in WORKSPACE's pip_venv.") % (accelerator, accelerator))
    lock = rctx.path(locks[accelerator])
    lock_name = lock.basename
    content = rctx.read(lock)
    lock_sha = rctx.execute(["sha256sum", str(lock)]).stdout.split(" ")[0]

    # venv.py picks the venv's path (external: under the user's venv root) and
    # prints it last: "built <path>" or "reused <path>".
    venv_args = [] if layout == "external" else ["--dest", str(rctx.path("venv"))]

    # Where pip finds builds PyPI does not serve (torch 2.13.0+cpu): a local
    # wheelhouse, which the group's CPU machines have at /opt/wheels, or the
    # accelerator's PyTorch index on a host that reaches it.
    pip_args = []
    wheelhouse = rctx.os.environ.get("KNLP_WHEELHOUSE", rctx.attr.wheelhouse)
    if wheelhouse and rctx.path(wheelhouse).exists:
        pip_args += ["--find-links", wheelhouse]
    torch_index = rctx.os.environ.get("KNLP_TORCH_INDEX", "")
    if torch_index:
        pip_args += ["--extra-index-url", torch_index]

    rctx.report_progress("building venv for %s from %s" % (accelerator, lock_name))
    res = rctx.execute(
        [interpreter, str(rctx.path(rctx.attr.venv_script)), "--interpreter", interpreter, "--lock", str(lock)] + venv_args + ["--"] + pip_args,
        environment = {k: rctx.os.environ[k] for k in _ROOT_ENV if k in rctx.os.environ},
        timeout = 3600,
        quiet = True,
    )
    if res.return_code != 0:
        fail(res.stderr.strip() or res.stdout.strip())
    venv = res.stdout.strip().splitlines()[-1].split(" ", 1)[1]

    pins = _lock_packages(content)
    if layout == "external":
        runtime = 'interpreter_path = "%s/bin/python3",' % venv
    else:
        runtime = """interpreter = "venv/bin/python3",
    files = glob(["venv/**"], exclude = ["venv/bin/**", "venv/**/__pycache__/**", "venv/**/* *"]) + ["venv/bin/python3"],"""

    rctx.file("BUILD.bazel", """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

exports_files(["venv_info.json"])

py_runtime(
    name = "py3_runtime",
    {runtime}
    python_version = "PY3",
    stub_shebang = "#!/usr/bin/env python3",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "python_toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(runtime = runtime) + "".join([
        'py_library(name = "%s")  # %s==%s, installed in the venv\n' % (name, name, v)
        for name, v in pins
    ]))

    rctx.file("requirements.bzl", """\
\"\"\"Generated from {lock}: rules_python's requirement() interface.\"\"\"

ACCELERATOR = "{accelerator}"
LOCK_SHA256 = "{sha}"
PACKAGES = {{{packages}}}

def requirement(name):
    key = name.lower().replace("_", "-").replace(".", "-")
    if key not in PACKAGES:
        fail("requirement(%r): %s is not in {lock_path}; add it to third_party/python/requirements.in and run: bazel run //third_party/python:lock" % (name, key))
    return "@pip//:" + key

all_requirements = ["@pip//:" + p for p in PACKAGES]
""".format(
        lock = lock_name,
        lock_path = "%s/%s" % (locks[accelerator].package, locks[accelerator].name),
        accelerator = accelerator,
        sha = lock_sha,
        packages = ", ".join(['"%s": "%s"' % p for p in pins]),
    ))

    rctx.file("venv_info.json", json.encode_indent({
        "accelerator": accelerator,
        "interpreter": interpreter,
        "layout": layout,
        "lock": str(locks[accelerator]),
        "lock_sha256": lock_sha,
        "python_version": version,
        "venv": venv if layout == "external" else "<runfiles>",
    }) + "\n")

pip_venv = repository_rule(
    implementation = _pip_venv_impl,
    attrs = {
        "interpreter": attr.string(default = "/usr/bin/python3.11"),
        "locks": attr.label_keyed_string_dict(allow_files = [".lock"], doc = "lock file -> accelerator"),
        "python_version": attr.string(default = "3.11"),
        "venv_script": attr.label(default = "//tools/bazel:venv.py"),
        "wheelhouse": attr.string(default = "/opt/wheels"),
    },
    environ = ["KNLP_ACCELERATOR", "KNLP_PYTHON", "KNLP_TORCH_INDEX", "KNLP_VENV_LAYOUT", "KNLP_WHEELHOUSE"] + _ROOT_ENV,
)
