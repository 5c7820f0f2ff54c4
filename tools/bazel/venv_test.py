"""venv.py builds a venv from a hash-locked file and explains a bad hash.

The wheels are made here by hand (a wheel is a zip with METADATA, WHEEL and
RECORD), so the test needs no index and no network.
"""

import hashlib
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tools.bazel import venv


def make_wheel(directory, name="knlpdemo", version="1.0"):
    dist = f"{name}-{version}.dist-info"
    path = Path(directory) / f"{name}-{version}-py3-none-any.whl"
    files = {
        f"{name}.py": "ANSWER = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in files.items():
            zf.writestr(arc, text)
        zf.writestr(f"{dist}/RECORD", "".join(f"{arc},,\n" for arc in files) + f"{dist}/RECORD,,\n")
    return path


def write_lock(path, wheel, sha=None):
    sha = sha or hashlib.sha256(wheel.read_bytes()).hexdigest()
    path.write_text(f"knlpdemo==1.0 \\\n    --hash=sha256:{sha}\n")
    return path


def pip_args(wheels):
    return ["--no-index", "--find-links", str(wheels)]


def test_builds_portable_venv_and_reuses_it(tmp_path):
    wheel = make_wheel(tmp_path)
    lock = write_lock(tmp_path / "good.lock", wheel)
    dest = tmp_path / "venv"
    assert venv.build(sys.executable, lock, dest, pip_args(tmp_path)) is True
    out = subprocess.run(
        [dest / "bin" / "python3", "-c", "import knlpdemo; print(knlpdemo.ANSWER)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "42"
    assert "command" not in (dest / "pyvenv.cfg").read_text()
    assert not list(dest.glob("lib/python*/site-packages/*.dist-info/RECORD"))
    assert venv.build(sys.executable, lock, dest, pip_args(tmp_path)) is False


def test_tampered_hash_names_the_package(tmp_path):
    wheel = make_wheel(tmp_path)
    lock = write_lock(tmp_path / "bad.lock", wheel, sha="0" * 64)
    dest = tmp_path / "venv"
    with pytest.raises(venv.VenvError) as err:
        venv.build(sys.executable, lock, dest, pip_args(tmp_path))
    message = str(err.value)
    assert "knlpdemo==1.0" in message
    assert "0" * 64 in message and "regenerate the lock" in message
    assert not dest.exists(), "a failed venv must not be left half-built"


def test_explain_passes_other_failures_through():
    text = venv.explain_pip_failure("x.lock", "ERROR: No matching distribution found for nope==1")
    assert "nope==1" in text and "x.lock" in text


def test_local_build_missing_names_the_wheelhouse():
    text = venv.explain_pip_failure(
        "cpu.lock", "ERROR: No matching distribution found for torch==2.13.0+cpu"
    )
    assert "torch==2.13.0+cpu" in text and "KNLP_WHEELHOUSE" in text


def test_unwritable_venv_root_is_a_message_not_a_traceback(tmp_path, capsys):
    wheel = make_wheel(tmp_path)
    lock = write_lock(tmp_path / "good.lock", wheel)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    args = ["--interpreter", sys.executable, "--lock", str(lock), "--dest", str(blocker / "venv")]
    assert venv.main(args) == 2
    assert "KNLP_VENV_ROOT" in capsys.readouterr().err


def plant_venv(dest, lock):
    """What another local user could leave at a predictable venv path."""
    (dest / "bin").mkdir(parents=True)
    (dest / "bin" / "python3").write_text("#!/bin/sh\necho pwned\n")
    (dest / venv.MARKER).write_text(venv.sha256_file(lock) + "\n")


def test_world_writable_root_or_venv_is_refused(tmp_path):
    wheel = make_wheel(tmp_path)
    lock = write_lock(tmp_path / "good.lock", wheel)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # the old /var/tmp/knlp
    plant_venv(shared / "venv", lock)
    with pytest.raises(venv.VenvError, match=f"{shared} is writable by others.*Delete {shared}"):
        venv.build(sys.executable, lock, shared / "venv", pip_args(tmp_path))

    root = tmp_path / "mine"
    root.mkdir(mode=0o700)
    plant_venv(root / "venv", lock)
    (root / "venv").chmod(0o777)
    dest = root / "venv"
    with pytest.raises(venv.VenvError, match=f"{dest} is writable by others.*Delete {dest}"):
        venv.build(sys.executable, lock, dest, pip_args(tmp_path))


@pytest.mark.skipif(os.geteuid() != 0, reason="planting another uid's files needs root")
def test_venv_owned_by_another_user_is_refused(tmp_path, capsys):
    wheel = make_wheel(tmp_path)
    lock = write_lock(tmp_path / "good.lock", wheel)
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    dest = root / "venv"
    plant_venv(dest, lock)
    for path in (dest, dest / "bin", dest / "bin" / "python3", dest / venv.MARKER):
        os.chown(path, 65534, 65534)
    args = ["--interpreter", sys.executable, "--lock", str(lock), "--root", str(root)]
    args += ["--dest", str(dest), "--"] + pip_args(tmp_path)
    assert venv.main(args) == 2
    err = capsys.readouterr().err
    assert f"{dest} is owned by uid 65534" in err and f"rm -rf {dest}" in err
    assert len(err.strip().splitlines()) == 1
    # Only bin/python3 belongs to the other user: still refused, delete the venv.
    for path in (dest, dest / "bin", dest / venv.MARKER):
        os.chown(path, 0, 0)
    with pytest.raises(venv.VenvError, match=f"python3 is owned by uid 65534.*Delete {dest} "):
        venv.build(sys.executable, lock, dest, pip_args(tmp_path), root)


def test_default_root_is_per_user(tmp_path):
    assert venv.default_root({"KNLP_VENV_ROOT": "/x/y", "HOME": "/h"}) == Path("/x/y")
    assert venv.default_root({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/knlp")
    assert venv.default_root({"HOME": "/h"}) == Path("/h/.cache/knlp")


def test_new_root_is_private_and_the_venv_named_by_the_lock(tmp_path, capsys):
    wheel = make_wheel(tmp_path)
    lock = write_lock(tmp_path / "good.lock", wheel)
    root = tmp_path / "cache" / "knlp"
    args = ["--interpreter", sys.executable, "--lock", str(lock), "--root", str(root), "--"]
    assert venv.main(args + pip_args(tmp_path)) == 0
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    dest = root / venv.venv_name(lock, sys.executable)
    assert capsys.readouterr().out.split() == ["built", str(dest)]
    assert (dest / venv.MARKER).exists()
