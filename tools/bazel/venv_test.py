"""venv.py builds a venv from a hash-locked file and explains a bad hash.

The wheels are made here by hand (a wheel is a zip with METADATA, WHEEL and
RECORD), so the test needs no index and no network.
"""

import hashlib
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
