"""`fork_wheel`: build one pinned fork (a `git_pin` src.tar) into a wheel.

The action runs third_party/forks:build_wheel on the pinned venv's interpreter
(`--config=cuda` selects the CUDA lock and its torch) with
`pip wheel --no-build-isolation --no-deps --no-index`, so the build sees only
the pinned torch and the fork's pinned sources. Its output is a directory with
exactly one .whl: an ordinary action output, cached locally and in the shared
cache, keyed by the fork archive's content, the venv lock's sha256, the torch
pin, the nvcc identity and the CUDA architectures. A wheel built once on one
machine is reused by every machine with the same toolkit.

    bazel build --config=cuda --define=KNLP_CUDA_ARCHS=9.0 //third_party/forks:wheels

`--define=KNLP_CUDA_ARCHS=...` sets TORCH_CUDA_ARCH_LIST (default 9.0: H100,
H200), `--define=KNLP_MAX_JOBS=...` the build's parallelism (default 16).
"""

load("@pip//:requirements.bzl", "ACCELERATOR", "LOCK_SHA256", "PACKAGES")

def _fork_wheel_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)

    # Identities of what Bazel does not hash key the cache entry: the venv
    # lock and torch pin here, and nvcc's entry of @local_toolchains (its
    # path, version and sha256; //third_party/forks:nvcc_identity) as an
    # input, from which the builder takes nvcc and CUDA_HOME.
    env = {
        "KNLP_ACCELERATOR": ACCELERATOR,
        "KNLP_PIP_LOCK_SHA256": LOCK_SHA256,
        "KNLP_TORCH_PIN": PACKAGES.get("torch", "missing"),
        "MAX_JOBS": ctx.var.get("KNLP_MAX_JOBS", "16"),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "TORCH_CUDA_ARCH_LIST": ctx.var.get("KNLP_CUDA_ARCHS", "9.0"),
    }
    env.update(ctx.attr.env)
    args = ctx.actions.args()
    args.add("--name", ctx.attr.fork)
    args.add("--src", ctx.file.src)
    args.add("--fork-info", ctx.file.fork_info)
    args.add("--out", out.path)
    args.add("--toolchains", ctx.file._toolchains)
    args.add_all(ctx.attr.requires, before_each = "--require")
    ctx.actions.run(
        executable = ctx.executable._builder,
        arguments = [args],
        inputs = [ctx.file.src, ctx.file.fork_info, ctx.file._toolchains],
        outputs = [out],
        env = env,
        mnemonic = "ForkWheel",
        progress_message = "Building the %s wheel (CUDA %s)" % (ctx.attr.fork, env["TORCH_CUDA_ARCH_LIST"]),
    )
    return [DefaultInfo(files = depset([out]))]

fork_wheel = rule(
    implementation = _fork_wheel_impl,
    attrs = {
        "fork": attr.string(mandatory = True),
        "src": attr.label(mandatory = True, allow_single_file = [".tar"]),
        "fork_info": attr.label(mandatory = True, allow_single_file = [".json"]),
        "requires": attr.string_list(doc = "modules the build imports from the pinned venv"),
        "env": attr.string_dict(doc = "extra build environment"),
        "_toolchains": attr.label(
            default = "//third_party/forks:nvcc_identity",
            allow_single_file = True,
        ),
        "_builder": attr.label(
            default = "//third_party/forks:build_wheel",
            executable = True,
            cfg = "exec",
        ),
    },
)
