"""Build a Python virtual environment from a hash-pinned lock file.

The `pip_venv` repository rule in tools/bazel/python.bzl runs this script with
the interpreter it has already version-checked. It is plain standard library so
that it runs before any package is installed, and it is also a library: the
tests in tools/bazel/venv_test.py drive it on hand-made wheels.

The venvs live under a root that belongs to the user who builds: by default
`$XDG_CACHE_HOME/knlp` or `~/.cache/knlp`, or `KNLP_VENV_ROOT`. Before a venv is
built or reused, the root, every directory below it down to the venv, and the
venv's `bin/`, `bin/python3` and `site-packages` must be owned by this user (or
by root) and not writable by group or others; otherwise the build stops and says
what to delete. That, not the marker, is what makes a venv trusted: in a root
that others can write to, anyone could plant a venv whose Python every target
then runs.

The venv is complete only when the marker file `.knlp-complete` exists and holds
the lock's sha256; a half-built venv (a killed fetch, a failed download) is
removed and built again on the next run. A file lock keeps two Bazel servers
that share the venv root from building the same venv at once.
"""

import argparse
import fcntl
import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

MARKER = ".knlp-complete"


class VenvError(Exception):
    """A failure with a message meant for the user, not a stack trace."""


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_REQ_LINE = re.compile(r"^\s*(\S+?)==(\S+?)\s+from\s")
_EXPECTED = re.compile(r"Expected sha256 ([0-9a-f]{64})")
_GOT = re.compile(r"Got\s+([0-9a-f]{64})")


def explain_pip_failure(lock, output):
    """Turn pip's output into one clear sentence per problem.

    pip reports a hash mismatch as a block: the requirement line, then
    `Expected sha256 ...` and `Got ...`. Anything else is passed through with
    its last lines, which is where pip says what went wrong.
    """
    problems = []
    current = None
    expected = None
    for line in output.splitlines():
        m = _REQ_LINE.match(line)
        if m:
            current = f"{m.group(1)}=={m.group(2)}"
            continue
        m = _EXPECTED.search(line)
        if m:
            expected = m.group(1)
            continue
        m = _GOT.search(line)
        if m and current:
            problems.append(
                f"lock {lock}: the downloaded file for {current} has sha256 "
                f"{m.group(1)}, but the lock expects {expected}. The lock was "
                "edited or the file on the index changed; regenerate the lock "
                "with `bazel run //third_party/python:lock` and never edit "
                "hashes by hand."
            )
            current = expected = None
    if problems:
        return "\n".join(problems)
    missing = re.findall(r"No matching distribution found for (\S+)", output)
    local = [m for m in missing if "+" in m]
    if local:
        return (
            f"lock {lock}: {', '.join(local)} is a local build that PyPI does not serve. "
            "Put its wheel in a wheelhouse directory and point KNLP_WHEELHOUSE at it "
            "(default /opt/wheels), or reach the accelerator's PyTorch index "
            "(KNLP_TORCH_INDEX, e.g. https://download.pytorch.org/whl/cpu)."
        )
    if missing:
        return (
            f"lock {lock}: no installable file for {', '.join(missing)} on this "
            "machine (index unreachable, or no wheel for Python "
            f"{sys.version_info[0]}.{sys.version_info[1]} on this platform)."
        )
    tail = "\n".join(output.strip().splitlines()[-15:])
    return f"lock {lock}: pip failed:\n{tail}"


def make_portable(venv):
    """Remove absolute output-base paths so the venv hashes the same anywhere.

    `pyvenv.cfg`'s `command =` line names the directory the venv was made in,
    and every `RECORD` lists installed files; both differ between checkouts and
    would make every Python action miss the remote cache.
    """
    cfg = venv / "pyvenv.cfg"
    lines = cfg.read_text().splitlines()
    cfg.write_text("".join(f"{l}\n" for l in lines if not l.startswith("command")))
    for record in venv.glob("lib/python*/site-packages/*.dist-info/RECORD"):
        record.unlink()


def default_root(environ=None):
    """KNLP_VENV_ROOT, else $XDG_CACHE_HOME/knlp, else ~/.cache/knlp."""
    environ = os.environ if environ is None else environ
    if environ.get("KNLP_VENV_ROOT"):
        return Path(environ["KNLP_VENV_ROOT"])
    if environ.get("XDG_CACHE_HOME", "").startswith("/"):
        return Path(environ["XDG_CACHE_HOME"]) / "knlp"
    home = environ.get("HOME") or pwd.getpwuid(os.geteuid()).pw_dir
    return Path(home) / ".cache" / "knlp"


def venv_name(lock, interpreter):
    """`venv-<16 hex of the lock's sha256>-py<X.Y.Z>`: a new lock, a new venv."""
    version = subprocess.run(
        [interpreter, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return f"venv-{sha256_file(lock)[:16]}-py{version}"


TRUSTED_OWNERS = {0}  # besides the current user: root can replace any file anyway


def check_owned(root, dest):
    """Raises VenvError unless `root`, each directory down to `dest`, and the
    parts of `dest` that run code are this user's (or root's) and not writable by
    group or others. Paths that do not exist yet are skipped."""
    root, dest = Path(root).absolute(), Path(dest).absolute()
    if dest != root and root not in dest.parents:
        raise VenvError(f"the venv {dest} is not under its root {root}")
    chain = [root] + [
        root.joinpath(*dest.relative_to(root).parts[: i + 1])
        for i in range(len(dest.relative_to(root).parts))
    ]
    chain += [dest / "bin", dest / "bin" / "python3", dest / MARKER]
    chain += sorted(dest.glob("lib/python*/site-packages"))
    me = os.geteuid()
    for path in chain:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        problem = None
        if st.st_uid != me and st.st_uid not in TRUSTED_OWNERS:
            problem = f"is owned by uid {st.st_uid}, not by you (uid {me})"
        elif stat.S_ISLNK(st.st_mode):
            if path != dest / "bin" / "python3":
                problem = "is a symbolic link"
        elif st.st_mode & 0o022:
            problem = f"is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
        if problem:
            culprit = path if path in (root, dest) or dest not in path.parents else dest
            raise VenvError(
                f"{path} {problem}, so the Python in {dest} cannot be trusted: someone else "
                f"could have put code there. Delete {culprit} (rm -rf {culprit}) and build "
                "again, or choose a root of your own with --repo_env=KNLP_VENV_ROOT=/some/dir"
            )


def build(interpreter, lock, dest, pip_args=(), root=None):
    """Create `dest` as a venv holding exactly what `lock` pins.

    `root` (default: `dest`'s parent) is the directory the ownership check
    starts at; it is created private (0700) when missing.
    """
    lock = Path(lock)
    dest = Path(dest)
    root = Path(root) if root is not None else dest.parent
    want = sha256_file(lock)
    marker = dest / MARKER
    if not root.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        root.mkdir(mode=0o700, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    check_owned(root, dest)
    if marker.exists() and marker.read_text().strip() == want:
        return False
    with open(dest.parent / f".{dest.name}.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        check_owned(root, dest)
        if marker.exists() and marker.read_text().strip() == want:
            return False
        if dest.exists():
            shutil.rmtree(dest)
        # The venv's own pip is the interpreter's bundled one (ensurepip), so
        # it is fixed by the interpreter version rather than by the index.
        subprocess.run([interpreter, "-m", "venv", str(dest)], check=True)
        cmd = [
            str(dest / "bin" / "python3"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--require-hashes",
            "--no-deps",
            "--only-binary=:all:",
            "-r",
            str(lock),
            *pip_args,
        ]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            shutil.rmtree(dest, ignore_errors=True)
            raise VenvError(explain_pip_failure(lock, proc.stdout))
        make_portable(dest)
        marker.write_text(want + "\n")
        check_owned(root, dest)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interpreter", required=True)
    parser.add_argument("--lock", required=True)
    parser.add_argument(
        "--root", help="the venv root (default: KNLP_VENV_ROOT or ~/.cache/knlp; --dest's parent)"
    )
    parser.add_argument("--dest", help="the venv (default: ROOT/venv-<lock hash>-py<version>)")
    parser.add_argument("pip_args", nargs="*")
    args = parser.parse_args(argv)
    if args.root is None:
        args.root = Path(args.dest).parent if args.dest else default_root()
    if args.dest is None:
        args.dest = Path(args.root) / venv_name(args.lock, args.interpreter)
    try:
        built = build(args.interpreter, args.lock, args.dest, args.pip_args, args.root)
    except VenvError as e:
        print(f"knlp: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"knlp: cannot write the venv {args.dest} ({e.strerror}: {e.filename}); "
            "make its directory writable or choose another with "
            "--repo_env=KNLP_VENV_ROOT=/some/dir",
            file=sys.stderr,
        )
        return 2
    print(f"{'built' if built else 'reused'} {args.dest}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PIP_NO_INPUT", "1")
    sys.exit(main())
