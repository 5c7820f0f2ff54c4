"""The GPUs knlp targets: the one table of which card means which architecture.

Everything that needs a GPU fact loads `GPU_TARGETS` from here:
tools/bazel/gpu.bzl (the kernel rules, the values of --//tools/bazel:gpu, the
per-architecture compile tests, gpu_targets.json) and containers/images.bzl
(one Bazel platform and one container image per target). Doc tables
(kernels/README.md, containers/README.md) are checked against it by tests.

Terms:
  target  one GPU model the group runs on (a key of GPU_TARGETS); also a
           value of --//tools/bazel:gpu and the name of its platform and image.
  gpu      the card's name, as used in docs and image labels.
  vendor   the GPU toolchain family: "cuda" (NVIDIA, nvcc) or "rocm" (AMD, hipcc).
  arch     the device code target the target's kernels compile for: an SM
           version for nvcc (`sm_90`), a gfx ISA name for hipcc (`gfx1100`).

Every CUDA arch here is compiled into the CUDA kernel library on every build
(SASS only, no PTX), so each one must be in `nvcc --list-gpu-code` of the
pinned toolkit (nvcc 13.0: sm_75 to sm_121); the ROCm archs likewise must be
accepted by the pinned hipcc's --offload-arch.
"""

# target -> {"gpu", "vendor", "arch"}, by vendor, then by architecture.
GPU_TARGETS = {
    "a100": {"gpu": "NVIDIA A100", "vendor": "cuda", "arch": "sm_80"},
    # Ampere GA102, compute capability 8.6 (not sm_80, which is the A100's GA100).
    "a10g": {"gpu": "NVIDIA A10G", "vendor": "cuda", "arch": "sm_86"},
    "l40": {"gpu": "NVIDIA L40", "vendor": "cuda", "arch": "sm_89"},
    "h100": {"gpu": "NVIDIA H100", "vendor": "cuda", "arch": "sm_90"},
    "b200": {"gpu": "NVIDIA B200", "vendor": "cuda", "arch": "sm_100"},
    "mi200": {"gpu": "AMD Instinct MI200 (MI210/MI250)", "vendor": "rocm", "arch": "gfx90a"},
    "w7900": {"gpu": "AMD Radeon Pro W7900", "vendor": "rocm", "arch": "gfx1100"},
}

# The vendors, in a stable order.
VENDORS = ["cuda", "rocm"]

# vendor -> how its compiler builds a kernel library: `flags` first, then
# `arch_flags` once per architecture ({arch}: "sm_90"; {number}: "90"), then
# the target's copts, -o and the sources. tools/bazel/gpu.bzl's
# gpu_shared_library and tools/gpu_acceptance.sh (no Bazel) both read this.
GPU_COMPILE_FLAGS = {
    "cuda": {
        "flags": ["-shared", "-Xcompiler", "-fPIC", "-O3", "-std=c++17", "-cudart", "static", "-I."],
        "arch_flags": ["-gencode", "arch=compute_{number},code={arch}"],
    },
    "rocm": {
        "flags": ["-x", "hip", "-shared", "-fPIC", "-O3", "-std=c++17", "-I."],
        "arch_flags": ["--offload-arch={arch}"],
    },
}

def _check():
    for name, p in GPU_TARGETS.items():
        if sorted(p.keys()) != ["arch", "gpu", "vendor"]:
            fail("knlp: GPU target %s has fields %s; expected arch, gpu, vendor" % (name, sorted(p.keys())))
        if p["vendor"] not in VENDORS:
            fail("knlp: GPU target %s has vendor %s; accepted: %s" % (name, p["vendor"], ", ".join(VENDORS)))
        prefix = "sm_" if p["vendor"] == "cuda" else "gfx"
        if not p["arch"].startswith(prefix):
            fail("knlp: GPU target %s (%s) has arch %s; a %s arch starts with %s" % (name, p["vendor"], p["arch"], p["vendor"], prefix))
    return True

_check()
