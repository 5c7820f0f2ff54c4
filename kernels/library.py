"""Finds and loads the compiled kernel library (a plain C ABI) with ctypes.

The libraries are built by //kernels:decode_cuda (nvcc) and //kernels:decode_rocm
(hipcc) as `libdecode_cuda.so` / `libdecode_rocm.so`. Inside Bazel they are in
the runfiles next to this file; from a plain checkout they are in `bazel-bin/kernels/`
after `bazel build //kernels/...`. `KNLP_KERNELS_LIB_DIR` overrides both.
"""

import ctypes
import json
import os
from functools import cache
from pathlib import Path

VENDORS = ("cuda", "rocm")
# The same source built by the host C++ compiler as a CPU emulation (tests only).
EMULATION = "emu"

_HERE = Path(__file__).resolve().parent


def library_path(vendor):
    """The path of the vendor's library, or a FileNotFoundError saying how to build it."""
    if vendor not in (*VENDORS, EMULATION):
        raise ValueError(f"vendor {vendor!r} is not one of {', '.join((*VENDORS, EMULATION))}")
    name = f"libdecode_{vendor}.so"
    candidates = []
    if os.environ.get("KNLP_KERNELS_LIB_DIR"):
        candidates.append(Path(os.environ["KNLP_KERNELS_LIB_DIR"]) / name)
    candidates += [
        Path.cwd() / "kernels" / name,  # Bazel runfiles root
        _HERE / name,
        _HERE.parent / "bazel-bin" / "kernels" / name,  # a plain checkout after bazel build
    ]
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError(
        f"{name} not found (looked in {', '.join(str(p.parent) for p in candidates)}); "
        f"build it with `bazel build //kernels:decode_{vendor}` or depend on it in Bazel"
    )


def arch_manifest_path(vendor):
    """The JSON file beside the library naming its architectures and compiler."""
    return library_path(vendor).with_name(f"libdecode_{vendor}.archs.json")


def gpu_targets():
    """tools/bazel/gpu_targets.bzl's table as built JSON, or None if it is not built."""
    for path in (
        Path.cwd() / "tools/bazel/gpu_targets.json",  # Bazel runfiles root
        _HERE.parent / "bazel-bin/tools/bazel/gpu_targets.json",  # after bazel build
    ):
        if path.exists():
            return json.loads(path.read_text())["targets"]
    return None


_P = ctypes.c_void_p
_I = ctypes.c_int
_SIGNATURES = {
    "knlp_kernels_vendor": (ctypes.c_char_p, []),
    "knlp_last_error": (ctypes.c_char_p, []),
    "knlp_decode_occupancy": (_I, [_I, _I, _I, ctypes.POINTER(_I)]),
    "knlp_decode_plan": (_I, [_I] * 5 + [ctypes.POINTER(_I), ctypes.POINTER(_I)]),
    "knlp_decode_attention": (
        _I,
        [_P, _P, _P, _P, _P, _P] + [_I] * 9 + [ctypes.c_float, _P, _P, _P, _P, _I, _P],
    ),
    "knlp_kv_write": (_I, [_P, _P, _P, _I, _I, _I, _P, _P, _P, _I, _P]),
    "knlp_fp8_e4m3_encode_host": (None, [_P, _P, ctypes.c_int64]),
    "knlp_fp8_e4m3_decode_host": (None, [_P, _P, ctypes.c_int64]),
    "knlp_bf16_round_host": (None, [_P, _P, ctypes.c_int64]),
}


@cache
def load(vendor):
    """The vendor's library with argument and result types declared."""
    lib = ctypes.CDLL(str(library_path(vendor)))
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def check(lib, status, what):
    """Raises RuntimeError with the library's message when a call returned non-zero."""
    if status != 0:
        raise RuntimeError(f"{what}: {lib.knlp_last_error().decode()}")


def decode_occupancy(lib, head_dim, group, device):
    """Decode blocks of this shape one multiprocessor of `device` holds at once."""
    blocks = ctypes.c_int()
    status = lib.knlp_decode_occupancy(head_dim, group, device, ctypes.byref(blocks))
    check(lib, status, "decode occupancy")
    return blocks.value


def decode_plan(lib, batch, kv_heads, max_seq_len, multiprocessors, blocks_per_sm):
    """(num_splits, chunk) the kernel uses for this shape when the device holds
    `multiprocessors * blocks_per_sm` decode blocks at once."""
    splits, chunk = ctypes.c_int(), ctypes.c_int()
    status = lib.knlp_decode_plan(
        batch,
        kv_heads,
        max_seq_len,
        multiprocessors,
        blocks_per_sm,
        ctypes.byref(splits),
        ctypes.byref(chunk),
    )
    check(lib, status, "decode plan")
    return splits.value, chunk.value
