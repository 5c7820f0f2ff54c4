"""The locks agree with requirements.in, and every pin carries a hash."""

import re
from pathlib import Path

import pytest

from third_party.python import lock

HERE = Path(__file__).resolve().parent
LOCKS = sorted(HERE.glob("requirements_*.lock"))


def names_in(requirements_text):
    names = []
    for line in requirements_text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def pins_in(lock_text):
    """{name: (version, number of hashes)} from a pip-compile lock."""
    pins, current = {}, None
    for line in lock_text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if m:
            current = m.group(1).lower().replace("_", "-").replace(".", "-")
            pins[current] = [m.group(2), 0]
        elif current and "--hash=sha256:" in line:
            pins[current][1] += 1
    return pins


def test_there_is_a_cpu_lock():
    assert HERE / "requirements_cpu.lock" in LOCKS


@pytest.mark.parametrize("path", LOCKS, ids=lambda p: p.name)
def test_lock_was_generated_from_current_input(path):
    first = path.read_text().splitlines()[0]
    want = lock.input_sha(HERE / "requirements.in")
    assert first.startswith(f"# input-sha256: {want}"), (
        f"{path.name} was generated from another requirements.in; "
        "run: bazel run //third_party/python:lock"
    )


@pytest.mark.parametrize("path", LOCKS, ids=lambda p: p.name)
def test_every_requirement_is_pinned_with_hashes(path):
    pins = pins_in(path.read_text())
    missing = [n for n in names_in((HERE / "requirements.in").read_text()) if n not in pins]
    assert not missing, f"{path.name} lacks {missing}; run: bazel run //third_party/python:lock"
    unhashed = [n for n, (_, hashes) in pins.items() if hashes == 0]
    assert not unhashed, f"{path.name} pins without hashes: {unhashed}"


def test_torch_build_matches_accelerator():
    versions = {p.name: pins_in(p.read_text())["torch"][0] for p in LOCKS}
    assert versions["requirements_cpu.lock"].endswith("+cpu")
    if "requirements_cuda.lock" in versions:
        assert "+cpu" not in versions["requirements_cuda.lock"]


def test_names_and_pins_parse():
    assert names_in("torch==2.13.0  # x\nnumpy\n# c\nfoo[bar]>=1") == ["torch", "numpy", "foo"]
    text = "Foo_Bar==1.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
    assert pins_in(text) == {"foo-bar": ["1.0", 2]}
