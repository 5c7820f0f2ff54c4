"""Rules and macros that turn containers/images.bzl into targets.

`image_manifest` writes the GPU target table as JSON for the Python tools and
tests; `gpu_platforms` declares the constraint values and one platform per
GPU target.
"""

load("//containers:images.bzl", "ARCHS", "GPU_TARGETS", "VENDORS", "exec_properties", "image_manifest")
load("//containers/platforms:pools.bzl", "gpu_constraint")

def _image_manifest_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".json")
    ctx.actions.write(out, json.encode_indent(image_manifest()) + "\n")
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

image_manifest_json = rule(
    implementation = _image_manifest_impl,
    doc = "containers/images.bzl as JSON: targets, toolkits, base image, exec properties.",
)

def gpu_platforms(name = "gpu_platforms"):
    """Constraint settings `gpu_vendor`, `gpu_arch` and `gpu`, their values, a platform per target.

    Targets: `:cuda`, `:rocm` (vendor), `:sm_90`, `:gfx1100`, ... (arch),
    `:gpu_h100`, ... (the GPU target itself, which only that target's platform
    has, so that an action can ask for it: pools.bzl's gpu_exec_constraints),
    and a platform named after each target (`:h100`, `:w7900`, ...). Kernel
    rules select on the arch values: `select({"//containers/platforms:sm_90": ...})`.

    Args:
      name: unused; the targets are named after the vendors, archs and GPU targets.
    """
    native.constraint_setting(name = "gpu_vendor")
    for vendor in VENDORS:
        native.constraint_value(name = vendor, constraint_setting = ":gpu_vendor")
    native.constraint_setting(name = "gpu_arch")
    for arch in ARCHS:
        native.constraint_value(name = arch, constraint_setting = ":gpu_arch")
    native.constraint_setting(name = "gpu")
    for name in sorted(GPU_TARGETS):
        native.constraint_value(name = gpu_constraint(name), constraint_setting = ":gpu")
    for name in sorted(GPU_TARGETS):
        p = GPU_TARGETS[name]
        native.platform(
            name = name,
            constraint_values = [
                "@platforms//os:linux",
                "@platforms//cpu:x86_64",
                ":" + p["vendor"],
                ":" + p["arch"],
                ":" + gpu_constraint(name),
            ],
            exec_properties = exec_properties(name),
        )

def _each_platform_impl(_settings, _attr):
    return {
        name: {"//command_line_option:platforms": str(Label("//containers/platforms:" + name))}
        for name in sorted(GPU_TARGETS)
    }

_each_platform = transition(
    implementation = _each_platform_impl,
    inputs = [],
    outputs = ["//command_line_option:platforms"],
)

def _arch_per_platform_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".txt")
    lines = []
    inputs = []
    for target, dep in sorted(ctx.split_attr.dep.items()):
        for f in dep[DefaultInfo].files.to_list():
            inputs.append(f)
            lines.append("%s %s" % (target, f.path))
    ctx.actions.run_shell(
        outputs = [out],
        inputs = inputs,
        command = "while read -r target path; do echo \"$target $(cat \"$path\")\"; done > %s <<'EOF'\n%s\nEOF" % (out.path, "\n".join(lines)),
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

arch_per_platform = rule(
    implementation = _arch_per_platform_impl,
    doc = "Builds `dep` once per GPU platform and writes `<target> <dep's output>` lines.",
    attrs = {
        "dep": attr.label(cfg = _each_platform, mandatory = True),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
)
