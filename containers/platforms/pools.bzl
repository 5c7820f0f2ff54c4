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
it asks for that target: a target with `exec_compatible_with =
gpu_exec_constraints("h100")`, or an action of a rule's exec group
`gpu_exec_group("h100")` (experiments/defs.bzl puts each GPU profile's runs
there). Everything else goes to the first execution platform: the CPU pool
under `--config=remote-exec`, the host otherwise.

WORKSPACE calls `register_pools()`, which registers the host and then every
GPU platform for every build, so a GPU exec group finds its platform with or
without remote execution, and a GPU step's action has the same platform, and
so the same remote-cache key, whether a pod runs it locally or a worker runs
it for the workstation.
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

# The platform Bazel makes of the machine it runs on (its default --host_platform).
HOST_PLATFORM = "@local_config_platform//:host"

def gpu_exec_group(target):
    """The name of the exec group whose actions run on a `target` GPU (`gpu_h100`).

    A rule declares `exec_groups = gpu_exec_groups()` and passes
    `exec_group = gpu_exec_group(target)` to an action that needs the GPU.

    Args:
      target: a key of GPU_TARGETS.

    Returns:
      The exec group's name, also the name of the target's constraint value.
    """
    gpu_exec_properties(target)  # checks the name
    return gpu_constraint(target)

def gpu_exec_groups():
    """`exec_groups` of a rule with GPU actions: one exec group per GPU target.

    Needs `--experimental_exec_groups` (Bazel 4.2.3; .bazelrc sets it). Each
    group asks for its target's constraint value, which only that target's
    platform has, so it resolves to the platform `register_pools()` registers.

    Returns:
      A dict of exec group name to exec_group.
    """
    return {
        gpu_exec_group(t): exec_group(exec_compatible_with = [str(c) for c in gpu_exec_constraints(t)])
        for t in sorted(GPU_TARGETS)
    }

def registered_execution_platforms():
    """What WORKSPACE registers, in order: the host first, then every GPU target's platform.

    The host comes first so that an action that asks for nothing keeps running
    on it (Bazel takes the first platform that satisfies an action's
    constraints); `--extra_execution_platforms` (--config=remote-exec) goes
    before both.
    """
    return [HOST_PLATFORM] + ["//containers/platforms:" + t for t in sorted(GPU_TARGETS)]

def register_pools(name = "pools"):
    """WORKSPACE: registers registered_execution_platforms() for every build.

    Args:
      name: unused; a WORKSPACE macro registers, it declares no target.
    """
    native.register_execution_platforms(*registered_execution_platforms())

def execution_platform_labels():
    """The execution platforms under --config=remote-exec, in the order Bazel tries them.

    The CPU pool (--extra_execution_platforms, .bazelrc), then what WORKSPACE
    registers (registered_execution_platforms()).
    """
    return ["//containers/platforms:cpu"] + registered_execution_platforms()

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
