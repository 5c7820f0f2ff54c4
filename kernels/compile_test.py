"""A kernel library really holds device code for one GPU architecture.

The Bazel target sets KNLP_VENDOR and KNLP_ARCH (one target per GPU target
in tools/bazel/gpu_targets.bzl). The library's embedded device code is read with
kernels/objcheck.py (container label and the code object's own ELF header),
and, where the vendor's inspection tool is installed (cuobjdump,
clang-offload-bundler), with that tool too.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kernels import library, objcheck

VENDOR = os.environ.get("KNLP_VENDOR", "cuda")
ARCH = os.environ.get("KNLP_ARCH", "sm_90")
KERNELS = ["decode_kernel", "kv_write_kernel"]


def targets():
    table = library.gpu_targets()
    if table is None:
        pytest.skip("gpu_targets.json not built (bazel build //tools/bazel:gpu_targets)")
    return table


def test_arch_is_a_target():
    assert any(p["arch"] == ARCH and p["vendor"] == VENDOR for p in targets().values())


def test_manifest_names_the_arch_and_compiler():
    manifest = json.loads(library.arch_manifest_path(VENDOR).read_text())
    assert manifest["vendor"] == VENDOR
    assert ARCH in manifest["archs"]
    assert manifest["compiler"].startswith({"cuda": "nvcc", "rocm": "hipcc"}[VENDOR])


def test_library_holds_the_arch():
    code = objcheck.device_code(library.library_path(VENDOR), KERNELS)
    assert code, "no device code found in the library"
    assert {c.vendor for c in code} == {VENDOR}
    mine = [c for c in code if c.arch == ARCH and c.kind in ("cubin", "code-object")]
    assert mine, f"no {ARCH} code object; found {[(c.arch, c.kind) for c in code]}"
    ours = [c for c in mine if set(c.symbols) == set(KERNELS)]
    assert ours, f"{ARCH} code lacks the kernels: {[c.symbols for c in mine]}"
    assert all(c.elf_arch == ARCH for c in ours), [c.elf_arch for c in ours]


def test_vendor_tool_agrees():
    path = str(library.library_path(VENDOR))
    if VENDOR == "cuda":
        tool = shutil.which("cuobjdump") or (
            "/usr/local/cuda/bin/cuobjdump"
            if Path("/usr/local/cuda/bin/cuobjdump").exists()
            else None
        )
        if not tool:
            pytest.skip("cuobjdump is not installed; objcheck's own reading is the check")
        out = subprocess.run([tool, "--list-elf", path], capture_output=True, text=True, check=True)
        assert f".{ARCH}." in out.stdout, out.stdout
    else:
        tool = shutil.which("clang-offload-bundler-15") or shutil.which("clang-offload-bundler")
        objcopy = shutil.which("objcopy")
        if not tool or not objcopy:
            pytest.skip(
                "clang-offload-bundler/objcopy not installed; objcheck's reading is the check"
            )
        bundle = Path(os.environ.get("TEST_TMPDIR", "/tmp")) / f"hip_fatbin_{ARCH}.bin"
        subprocess.run(
            [objcopy, "-O", "binary", "--only-section=.hip_fatbin", path, str(bundle)], check=True
        )
        out = subprocess.run(
            [tool, "--list", "--type=o", f"--input={bundle}"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"hipv4-amdgcn-amd-amdhsa--{ARCH}" in out.stdout.split(), out.stdout
