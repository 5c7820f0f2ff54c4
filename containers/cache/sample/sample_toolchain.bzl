"""A stand-in for @local_toolchains: one "compiler" whose identity comes from the environment.

`SAMPLE_TOOLKIT` (default "sampletool 1.0") plays the part of nvcc's version and
sha256; the cache test sets it with --repo_env to act as a machine with another
toolkit.
"""

def _sample_toolchain_impl(rctx):
    identity = rctx.os.environ.get("SAMPLE_TOOLKIT", "sampletool 1.0")
    rctx.file("BUILD.bazel", "")
    rctx.file("identity.bzl", "IDENTITY = %r\n" % identity)

sample_toolchain = repository_rule(
    implementation = _sample_toolchain_impl,
    environ = ["SAMPLE_TOOLKIT"],
)
