"""GPU kernels built by Bazel for NVIDIA (nvcc) and AMD (hipcc) from one source.

The GPUs the group builds for (`GPU_TARGETS`: GPU target -> gpu, vendor,
arch) are declared once, in tools/bazel/gpu_targets.bzl; this file re-exports
them and holds the rules that compile for them:

  * `gpu_shared_library(name, vendor, srcs, hdrs)`: a `lib<name>.so` with a
    plain C ABI, compiled by nvcc (`vendor = "cuda"`) or hipcc
    (`vendor = "rocm"`) for every selected architecture of that vendor. It
    links no torch; Python loads it with ctypes.
  * `gpu_flag` (the build setting `//tools/bazel:gpu`) chooses which targets
    are built: `all` (default: every target of both vendors, what the CPU gate
    compiles), a vendor (`cuda`, `rocm`; `--config=cuda` / `--config=rocm` set
    these) or one target (`h100`, `w7900`, ...). A library whose vendor has no
    selected target is incompatible, so `bazel test //...` skips it and the
    tests that need it.
  * `rocm_device_libs`: ROCm 5.2's device libraries stop at gfx1036; this
    action derives `oclc_isa_version_1100.bc` from the gfx1036 one (the ISA
    constant 10306 becomes 11000) with llvm-dis-15 / llvm-as-15 and gives hipcc
    a complete device-library directory.

The toolchains come from `@local_toolchains` (tools/bazel/toolchains.bzl: nvcc
through CUDA_PATH or /usr/local/cuda, hipcc through ROCM_PATH or Debian's
/usr/bin). Each compiler's `identity` (version and sha256 of the binary) is in
the action's environment, so machines with different toolkits never share a
cache entry. A missing compiler fails the build of the targets that need it
with a message naming the compiler and ./setup.sh, before any compiler runs.
"""

load("@local_toolchains//:toolchains.bzl", "TOOLCHAINS")
load(
    "//tools/bazel:gpu_targets.bzl",
    "GPU_COMPILE_FLAGS",
    _GPU_TARGETS = "GPU_TARGETS",
    _VENDORS = "VENDORS",
)

# Re-exported so kernel BUILD files load one file; declared in gpu_targets.bzl.
GPU_TARGETS = _GPU_TARGETS

# vendor -> the compiler in @local_toolchains that builds for it.
_COMPILERS = {"cuda": "nvcc", "rocm": "hipcc"}
GPU_VENDORS = {vendor: _COMPILERS[vendor] for vendor in _VENDORS}

GPU_FLAG_VALUES = ["all"] + sorted(GPU_VENDORS.keys()) + sorted(GPU_TARGETS.keys())

# A constraint value no platform has: Bazel targets for GPU targets that
# --//tools/bazel:gpu leaves out are incompatible and skipped. (Bazel 4.2's
# built-in @platforms has no :incompatible.)
_NOT_SELECTED = "//tools/bazel:not_selected_by_gpu_flag"

_SETUP_HINT = "install it (./setup.sh does for hipcc; the CUDA toolkit for nvcc), then `bazel sync --configure`"

def gpu_archs(vendor, flag = "all"):
    """The architectures of `vendor` that the flag value `flag` selects, in target order.

    Args:
      vendor: "cuda" or "rocm".
      flag: a value of //tools/bazel:gpu.

    Returns:
      A list of architecture names such as "sm_90".
    """
    archs = []
    for target, p in GPU_TARGETS.items():
        if p["vendor"] != vendor:
            continue
        if flag in ("all", vendor, target) and p["arch"] not in archs:
            archs.append(p["arch"])
    return archs

GpuFlagInfo = provider(doc = "The value of the //tools/bazel:gpu build setting.", fields = ["value"])

def _gpu_flag_impl(ctx):
    value = ctx.build_setting_value
    if value not in GPU_FLAG_VALUES:
        fail("knlp: --//tools/bazel:gpu=%s is not a GPU selection; accepted: %s" % (value, ", ".join(GPU_FLAG_VALUES)))
    return [GpuFlagInfo(value = value)]

gpu_flag = rule(
    implementation = _gpu_flag_impl,
    build_setting = config.string(flag = True),
    doc = "Which GPU targets kernels compile for: " + ", ".join(GPU_FLAG_VALUES),
)

def gpu_flag_settings(name):
    """Declares the flag `name` and one config_setting `<name>_<value>` per accepted value."""
    gpu_flag(name = name, build_setting_default = "all", visibility = ["//:workspace"])
    for value in GPU_FLAG_VALUES:
        native.config_setting(
            name = "%s_%s" % (name, value),
            flag_values = {":" + name: value},
            visibility = ["//:workspace"],
        )

def _flag_label(value):
    return "//tools/bazel:gpu_" + value

def gpu_vendor_compatible(vendor):
    """A `target_compatible_with` value: compatible when the flag selects an arch of `vendor`.

    Args:
      vendor: "cuda" or "rocm".

    Returns:
      A select() over the //tools/bazel:gpu config_settings.
    """
    branches = {}
    for value in GPU_FLAG_VALUES:
        if gpu_archs(vendor, value):
            branches[_flag_label(value)] = []
    branches["//conditions:default"] = [_NOT_SELECTED]
    return select(branches)

def _tool(name):
    return TOOLCHAINS.get(name, {"available": False})

def _missing_tool_action(ctx, out, tool):
    """An action that fails with a clear message instead of a compiler error."""
    msg = "knlp: %s needs %s, which was not found on this machine; %s." % (ctx.label, tool, _SETUP_HINT)
    ctx.actions.run_shell(
        outputs = [out],
        command = "echo \"$1\" >&2; exit 1",
        arguments = [msg],
        mnemonic = "GpuToolMissing",
        progress_message = "%s: %s is missing" % (ctx.label, tool),
    )

def _rocm_device_libs_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    hipcc = _tool("hipcc")
    if not hipcc["available"]:
        _missing_tool_action(ctx, out, "hipcc")
        return [DefaultInfo(files = depset([out]))]
    ctx.actions.run_shell(
        outputs = [out],
        inputs = [ctx.file._script],
        command = "bash \"$1\" \"$2\" \"$3\"",
        arguments = [ctx.file._script.path, ctx.attr.source_dir, out.path],
        env = {"KNLP_HIPCC_IDENTITY": hipcc["identity"], "PATH": "/usr/bin:/bin"},
        mnemonic = "RocmDeviceLibs",
        progress_message = "Deriving the gfx1100 ROCm device library for %s" % ctx.label,
    )
    return [DefaultInfo(files = depset([out]))]

rocm_device_libs = rule(
    implementation = _rocm_device_libs_impl,
    attrs = {
        "source_dir": attr.string(
            default = "/usr/lib/x86_64-linux-gnu/amdgcn/bitcode",
            doc = "ROCm's installed device-library directory (Debian's by default).",
        ),
        "_script": attr.label(default = "//tools/bazel:rocm_device_libs.sh", allow_single_file = True),
    },
    doc = "ROCm's device libraries plus oclc_isa_version_1100.bc derived from the gfx1036 one.",
)

def _gpu_shared_library_impl(ctx):
    vendor = ctx.attr.vendor
    tool_name = GPU_VENDORS[vendor]
    tool = _tool(tool_name)
    flag = ctx.attr._flag[GpuFlagInfo].value
    archs = gpu_archs(vendor, flag)
    out = ctx.actions.declare_file("lib%s.so" % ctx.label.name)
    manifest = ctx.actions.declare_file("lib%s.archs.json" % ctx.label.name)
    ctx.actions.write(manifest, json.encode({"archs": archs, "compiler": tool.get("identity", "missing"), "vendor": vendor}))
    files = depset([out, manifest])
    if not tool["available"]:
        _missing_tool_action(ctx, out, tool_name)
        return [DefaultInfo(files = files, runfiles = ctx.runfiles(files = [out, manifest]))]

    srcs = ctx.files.srcs
    inputs = srcs + ctx.files.hdrs
    args = ctx.actions.args()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    compile_flags = GPU_COMPILE_FLAGS[vendor]
    args.add_all(compile_flags["flags"])
    for arch in archs:
        number = arch[len("sm_"):] if vendor == "cuda" else arch
        args.add_all([f.format(arch = arch, number = number) for f in compile_flags["arch_flags"]])
    if vendor == "cuda":
        env["KNLP_NVCC_IDENTITY"] = tool["identity"]
    else:
        device_libs = ctx.file.rocm_device_libs
        inputs = inputs + [device_libs]
        args.add(device_libs.path, format = "--rocm-device-lib-path=%s")
        env["HIP_PLATFORM"] = "amd"
        env["KNLP_HIPCC_IDENTITY"] = tool["identity"]
    args.add_all(ctx.attr.copts)
    args.add("-o", out)
    args.add_all(srcs)
    ctx.actions.run(
        executable = tool["path"],
        arguments = [args],
        inputs = inputs,
        outputs = [out],
        env = env,
        mnemonic = "NvccLink" if vendor == "cuda" else "HipccLink",
        progress_message = "Compiling %s for %s (%s)" % (ctx.label, vendor, ", ".join(archs)),
    )
    return [DefaultInfo(files = files, runfiles = ctx.runfiles(files = [out, manifest]))]

_gpu_shared_library = rule(
    implementation = _gpu_shared_library_impl,
    attrs = {
        "copts": attr.string_list(doc = "Extra compiler flags."),
        "hdrs": attr.label_list(allow_files = [".h", ".cuh"]),
        "rocm_device_libs": attr.label(allow_single_file = True),
        "srcs": attr.label_list(allow_files = [".cu"], mandatory = True),
        "vendor": attr.string(mandatory = True, values = sorted(GPU_VENDORS.keys())),
        "_flag": attr.label(default = "//tools/bazel:gpu"),
    },
)

def gpu_shared_library(name, vendor, srcs, hdrs = [], copts = [], **kwargs):
    """A shared library with a C ABI, compiled from CUDA/HIP source for one vendor.

    Args:
      name: the target; the library is `lib<name>.so`, beside it
        `lib<name>.archs.json` names the architectures and the compiler.
      vendor: "cuda" (nvcc) or "rocm" (hipcc).
      srcs: the `.cu` sources (one source serves both vendors).
      hdrs: headers they include (by workspace-relative path).
      copts: extra compiler flags.
      **kwargs: common attributes (visibility, tags, ...).
    """
    if vendor not in GPU_VENDORS:
        fail("knlp: gpu_shared_library %s: vendor %s is not one of %s" % (name, vendor, ", ".join(sorted(GPU_VENDORS.keys()))))
    _gpu_shared_library(
        name = name,
        vendor = vendor,
        srcs = srcs,
        hdrs = hdrs,
        copts = copts,
        rocm_device_libs = "//tools/bazel:rocm_device_libs" if vendor == "rocm" else None,
        target_compatible_with = gpu_vendor_compatible(vendor),
        **kwargs
    )

def gpu_arch_compatible(arch):
    """A `target_compatible_with` value: compatible when the flag selects `arch`.

    Args:
      arch: an architecture of GPU_TARGETS, such as "gfx1100".

    Returns:
      A select() over the //tools/bazel:gpu config_settings.
    """
    vendor = [p["vendor"] for p in GPU_TARGETS.values() if p["arch"] == arch]
    if not vendor:
        fail("knlp: %s is not the architecture of any GPU target in tools/bazel/gpu_targets.bzl" % arch)
    branches = {}
    for value in GPU_FLAG_VALUES:
        if arch in gpu_archs(vendor[0], value):
            branches[_flag_label(value)] = []
    branches["//conditions:default"] = [_NOT_SELECTED]
    return select(branches)

def _gpu_targets_json_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".json")
    ctx.actions.write(out, json.encode_indent({"compilers": GPU_VENDORS, "targets": GPU_TARGETS}) + "\n")
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

gpu_targets_json = rule(
    implementation = _gpu_targets_json_impl,
    doc = "Writes GPU_TARGETS as <name>.json for Python tests, tools and doc checks.",
)

def gpu_vendor_select(targets):
    """A select() over the flag: the entries of `targets` (vendor -> list) whose vendor is built.

    For `data`/`deps` of targets that work with whichever vendor library exists
    (a Python op loading the one that matches its torch).

    Args:
      targets: vendor -> list of labels.

    Returns:
      A select() over the //tools/bazel:gpu config_settings.
    """
    branches = {}
    for value in GPU_FLAG_VALUES:
        chosen = []
        for vendor in sorted(targets.keys()):
            if gpu_archs(vendor, value):
                chosen += targets[vendor]
        branches[_flag_label(value)] = chosen
    return select(branches)
