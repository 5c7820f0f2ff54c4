"""Worker pools: the exec properties that send an action to the CPU pool or to one GPU.

Remote execution engines pick a worker by the platform properties of each
action, which Bazel takes from the action's execution platform. knlp has one
pool of CPU workers (compiles, lint, the gate, the cpu profile) and one pool per
GPU target of tools/bazel/gpu_targets.bzl (training steps of that target's
profile). `OSFamily` and `ISA` are the properties REAPI names for every
worker; `pool` and `gpu` are knlp's (containers/README.md, "Remote execution",
says how BuildGrid and Buildbarn workers declare them).

`//containers/platforms:cpu` is the CPU pool's platform; the GPU platforms
(`:h100`, ..., defs.bzl's gpu_platforms) add `gpu_exec_properties(target)` to
their container image and toolkit. An action reaches a GPU platform only if
its target asks for it with `exec_compatible_with = gpu_exec_constraints("h100")`;
everything else goes to the CPU pool, the first execution platform that
`--config=remote-exec` registers.
"""

load("//tools/bazel:gpu_targets.bzl", "GPU_TARGETS")

# Every worker: what REAPI calls the OS and the instruction set.
_WORKER = {"ISA": "x86-64", "OSFamily": "Linux"}

CPU_EXEC_PROPERTIES = dict(_WORKER, pool = "cpu")

def gpu_exec_properties(target):
    """The pool properties of a GPU target's platform: `pool=gpu`, `gpu=<target>`.

    Args:
      target: a key of GPU_TARGETS.

    Returns:
      A dict of exec property name to value.
    """
    if target not in GPU_TARGETS:
        fail("knlp: %s is not a GPU target; accepted: %s" % (target, ", ".join(sorted(GPU_TARGETS))))
    return dict(_WORKER, gpu = target, pool = "gpu")

def gpu_constraint(target):
    """The name of the constraint value that only `target`'s platform has."""
    return "gpu_" + target

def gpu_exec_constraints(target):
    """`exec_compatible_with` for an action that must run on a `target` GPU.

    Args:
      target: a key of GPU_TARGETS.

    Returns:
      A list of one constraint value label.
    """
    gpu_exec_properties(target)  # checks the name
    return [Label("//containers/platforms:" + gpu_constraint(target))]

def execution_platform_labels():
    """What --extra_execution_platforms must list, in order: the CPU pool first."""
    return ["//containers/platforms:cpu"] + ["//containers/platforms:" + t for t in sorted(GPU_TARGETS)]

def cpu_platform(name = "cpu"):
    """The CPU pool's execution platform.

    Args:
      name: the target name.
    """
    native.platform(
        name = name,
        constraint_values = [
            "@platforms//os:linux",
            "@platforms//cpu:x86_64",
        ],
        exec_properties = CPU_EXEC_PROPERTIES,
    )
