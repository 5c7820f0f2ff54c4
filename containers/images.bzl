"""The container side of the GPU targets: toolkits, images, platform properties.

The GPU targets themselves (target -> gpu, vendor, arch) are declared once,
in tools/bazel/gpu_targets.bzl, which the kernel rules load too; this file
re-exports them and adds what only containers need. Everything here derives
from that table: the Bazel platforms in //containers/platforms, the container
images built by containers/image.py and the tests in //containers.

Terms:
  target  one GPU model the group runs on (a key of GPU_TARGETS).
  vendor   the GPU toolchain family: "cuda" (NVIDIA, nvcc) or "rocm" (AMD, hipcc).
  arch     the device code target: an SM version for nvcc (`sm_90`), a gfx
           ISA name for hipcc (`gfx1100`).
  toolkit  the vendor compiler version an image carries; it must equal the one
           Bazel's @local_toolchains finds on the build machines.

The base image and its digest are in containers/images_lock.bzl, which a host
with registry access rewrites (`containers/image.py lock`).
"""

load("//containers:images_lock.bzl", "BASE_IMAGE", "PUSHED_IMAGES")
load("//containers/platforms:pools.bzl", "CPU_EXEC_PROPERTIES", "execution_platform_labels", "gpu_exec_properties")
load("//tools/bazel:gpu_targets.bzl", _GPU_TARGETS = "GPU_TARGETS", _VENDORS = "VENDORS")

# Vendor toolchains. `version` is the prefix that @local_toolchains' version
# line for `tool` must contain; `packages` are what the image installs.
TOOLKITS = {
    "cuda": {
        "tool": "nvcc",
        # nvcc prints "Cuda compilation tools, release 13.0, V13.0.88".
        "version": "V13.0.88",
        # NVIDIA's Debian 12 repository; the key is checked by fingerprint.
        "apt_repo": "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/",
        "apt_key_fingerprint": "EB693B3035CD5710E231E123A4B469963BF863CC",
        "packages": ["cuda-nvcc-13-0=13.0.88-1", "cuda-cudart-dev-13-0", "g++"],
        # The pip lock whose venv the image primes (third_party/python/).
        "pip_lock": "requirements_cuda.lock",
    },
    "rocm": {
        "tool": "hipcc",
        # Debian's hipcc prints "HIP version: 5.2.21153-0".
        "version": "HIP version: 5.2.21153",
        "apt_repo": "",
        "apt_key_fingerprint": "",
        # Debian's own ROCm (setup.sh installs it); llvm-15 builds the gfx1100
        # device library that ROCm 5.2 lacks.
        "packages": ["hipcc", "llvm-15"],
        # There is no ROCm lock yet; ROCm images carry the CPU venv.
        "pip_lock": "requirements_cpu.lock",
    },
}

# The GPUs (tools/bazel/gpu_targets.bzl). `arch` is the single device target
# a kernel compiles for on this target; `gpu` is the name used in docs and
# image labels.
GPU_TARGETS = _GPU_TARGETS

VENDORS = _VENDORS

# Every architecture some target targets, in a stable order.
ARCHS = [GPU_TARGETS[p]["arch"] for p in sorted(GPU_TARGETS)]

# What every image carries besides the vendor toolkit: the same Bazel and
# Python as the development machines (see setup.sh and WORKSPACE's pip_venv).
IMAGE_COMMON = {
    "bazel": "4.2.3",
    "python": "3.11",
    # Debian's archive as of the base image's build date, so apt installs the
    # same package versions every time.
    "debian_snapshot": "20251229T000000Z",
    # Where the image's venvs sit (KNLP_VENV_ROOT). Remote workers run Python
    # actions on them, so --config=remote-exec points the client's toolchain at
    # the same path (containers/README.md, "The venv on a worker").
    "venv_root": "/opt/knlp/venvs",
}

# Where `containers/image.py push` puts the images; the platforms name them
# by digest once pushed (PUSHED_IMAGES in images_lock.bzl).
REGISTRY = "prune:5000/knlp"

def image_name(target):
    """The repository name of a target's image, without registry or digest."""
    return "knlp-%s-%s" % (GPU_TARGETS[target]["vendor"], target)

def container_image(target):
    """The `container-image` exec property for a target's platform.

    The pushed knlp image when images_lock.bzl records one; until then the
    digest-pinned base image, which lacks the toolkit (actions that need it
    then fail on the worker with "nvcc: not found" rather than running in a
    wrong container).

    Args:
      target: a key of GPU_TARGETS.

    Returns:
      "docker://<repository>@sha256:<digest>".
    """
    pushed = PUSHED_IMAGES.get(target)
    if pushed:
        return "docker://%s/%s@%s" % (REGISTRY, image_name(target), pushed)
    return "docker://%s@%s" % (BASE_IMAGE["repository"], BASE_IMAGE["digest"])

def exec_properties(target):
    """The remote-execution properties of a target's platform.

    `container-image` picks the worker's container, `pool` and `gpu`
    (containers/platforms/pools.bzl) the worker. The platform's properties
    are part of every action key, so `knlp-gpu-arch` and `knlp-toolkit` keep
    actions for different GPUs or toolkits apart in the cache even where they
    would run in the same image.

    Args:
      target: a key of GPU_TARGETS.

    Returns:
      A dict of exec property name to value.
    """
    p = GPU_TARGETS[target]
    toolkit = TOOLKITS[p["vendor"]]
    properties = gpu_exec_properties(target)
    properties.update({
        "container-image": container_image(target),
        "knlp-gpu-arch": p["arch"],
        "knlp-toolkit": "%s %s" % (toolkit["tool"], toolkit["version"]),
    })
    return properties

def image_manifest():
    """Everything above as one JSON-encodable dict (for tools and tests)."""
    return {
        "archs": ARCHS,
        "base_image": BASE_IMAGE,
        "cpu_exec_properties": CPU_EXEC_PROPERTIES,
        "execution_platforms": execution_platform_labels(),
        "image_common": IMAGE_COMMON,
        "targets": {
            name: dict(
                p,
                exec_properties = exec_properties(name),
                image = image_name(name),
                pushed = PUSHED_IMAGES.get(name, ""),
            )
            for name, p in GPU_TARGETS.items()
        },
        "registry": REGISTRY,
        "toolkits": TOOLKITS,
        "vendors": VENDORS,
    }
