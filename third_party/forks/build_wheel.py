"""Build one fork's wheel from its pinned archive: the action behind `fork_wheel`.

Runs on the pinned venv's interpreter. Before compiling anything it checks
what a CUDA build needs and fails with one clear sentence when something is
missing: nvcc, a CUDA build of the pinned torch, the modules the fork's build
imports. Then it unpacks the archive into a private directory and runs
`pip wheel --no-build-isolation --no-deps --no-index`, and checks that exactly
one wheel came out.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SETUP_HINT = "run ./setup.sh (the doctor, `bazel run //tools:doctor`, lists what is missing)"


class BuildError(Exception):
    pass


def check_environment(name, requires, env, cuda=True, find_spec=importlib.util.find_spec):
    """Problems that would make the build fail later with a compiler's message."""
    problems = []
    nvcc = env.get("KNLP_NVCC", "")
    if cuda and (not nvcc or not Path(nvcc).exists()):
        problems.append(
            f"nvcc (the CUDA toolkit) is needed to build the {name} wheel and was not found; "
            f"{SETUP_HINT}, then `bazel sync --configure`"
        )
    if cuda and env.get("KNLP_ACCELERATOR") != "cuda":
        problems.append(
            f"the {name} wheel builds against the CUDA torch, but the venv is the "
            f"{env.get('KNLP_ACCELERATOR')!r} one (torch {env.get('KNLP_TORCH_PIN')}); "
            "build with --config=cuda"
        )
    pin = env.get("KNLP_TORCH_PIN", "")
    if cuda and pin and "torch" in requires and find_spec("torch") is not None:
        installed = importlib.metadata.version("torch")
        if installed != pin:
            problems.append(
                f"the venv's torch is {installed}, but the lock pins {pin}; rebuild the venv "
                "(bazel sync --only=pip)"
            )
    missing = [m for m in requires if find_spec(m) is None]
    if missing:
        problems.append(
            f"the {name} build imports {', '.join(missing)}, which the pinned venv does not "
            "hold; add them to third_party/python/requirements.in and run "
            "`bazel run //third_party/python:lock -- cuda`"
        )
    return problems


def scm_version(info):
    """The version setuptools_scm reports for an archive without .git: a local fork build."""
    return f"0.0.0.dev0+knlp.g{info['commit'][:12]}"


def build(name, src_tar, info, out, requires, env=None, log=sys.stderr, cuda=True):
    """Builds the wheel into `out`; `cuda=False` only for the offline integration test."""
    env = dict(os.environ if env is None else env)
    problems = check_environment(name, requires, env, cuda)
    if problems:
        raise BuildError("\n".join(f"knlp: {p}" for p in problems))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"knlp-{name}-") as tmp:
        src = Path(tmp) / "src"
        with tarfile.open(src_tar) as tar:
            tar.extractall(src)  # our own archive of a verified commit
        env.setdefault("SETUPTOOLS_SCM_PRETEND_VERSION", scm_version(info))
        env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", HOME=tmp)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps"]
        cmd += ["--no-index", "-w", str(out), str(src)]
        print(f"building {name} at {info['commit']}: {' '.join(cmd)}", file=log)
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=log, check=False)
        if proc.returncode != 0:
            raise BuildError(f"knlp: building the {name} wheel failed (pip exit {proc.returncode})")
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"knlp: expected one wheel for {name}, got {[w.name for w in wheels]}")
    return wheels[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--src", required=True)
    parser.add_argument("--fork-info", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--require", action="append", default=[])
    parser.add_argument("--toolchains", help="JSON with nvcc's @local_toolchains entry")
    args = parser.parse_args(argv)
    info = json.loads(Path(args.fork_info).read_text())
    if args.toolchains:
        nvcc = json.loads(Path(args.toolchains).read_text()).get("nvcc", {})
        if nvcc.get("available"):
            cuda_bin = Path(nvcc["path"]).parent
            os.environ.update(
                KNLP_NVCC=nvcc["path"],
                KNLP_NVCC_IDENTITY=nvcc["identity"],
                CUDA_HOME=str(cuda_bin.parent),
                PATH=f"{cuda_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            )
    try:
        wheel = build(args.name, args.src, info, args.out, args.require)
    except BuildError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"built {wheel.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
