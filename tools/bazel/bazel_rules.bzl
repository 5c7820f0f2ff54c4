"""The three repositories Bazel 4.2.3 needs before it can build anything.

Bazel's own WORKSPACE suffix would download `rules_cc`, `rules_java` and
`remote_coverage_tools` from GitHub, which these machines cannot reach.
`offline_bazel_rules()` declares them first, so the suffix's declarations are
skipped. On a Debian host with `bazel-rules-java` installed (./setup.sh
installs it) each comes from the disk; on any other host the archives that
Bazel 4.2.3 itself pins are downloaded and checked against their sha256.
"""

_DEBIAN_RULES_JAVA = "/usr/share/bazel/rules/java"

# Debian's bazel-rules-cc targets a newer Bazel and fails to load in 4.2.3;
# the native rules are all 4.2.3 needs from rules_cc.
_RULES_CC_STAND_IN = {
    "WORKSPACE": "workspace(name = \"rules_cc\")\n",
    "BUILD": "",
    "cc/BUILD": """\
package(default_visibility = ["//visibility:public"])

alias(
    name = "toolchain_type",
    actual = "@bazel_tools//tools/cpp:toolchain_type",
)
""",
    "cc/defs.bzl": """\
\"\"\"Stand-in for rules_cc: the native C++ rules, re-exported.\"\"\"

cc_binary = native.cc_binary
cc_import = native.cc_import
cc_library = native.cc_library
cc_proto_library = native.cc_proto_library
cc_test = native.cc_test
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
fdo_prefetch_hints = native.fdo_prefetch_hints
fdo_profile = native.fdo_profile
objc_import = native.objc_import
objc_library = native.objc_library
""",
}

# Bazel never runs coverage here; the target only has to exist.
_COVERAGE_STAND_IN = {
    "WORKSPACE": "workspace(name = \"remote_coverage_tools\")\n",
    "BUILD": """\
package(default_visibility = ["//visibility:public"])

sh_binary(
    name = "coverage_report_generator",
    srcs = ["coverage_report_generator.sh"],
)
""",
    "coverage_report_generator.sh": "#!/bin/sh\necho 'knlp: coverage reports need the real remote_coverage_tools (a host with network)' >&2\nexit 1\n",
}

def _offline_or_pinned_impl(rctx):
    debian = rctx.path(_DEBIAN_RULES_JAVA).exists
    if debian and rctx.attr.local_path:
        for child in rctx.path(rctx.attr.local_path).readdir():
            rctx.symlink(child, child.basename)
        return
    if debian and rctx.attr.stand_in:
        for path, content in rctx.attr.stand_in.items():
            rctx.file(path, content, executable = path.endswith(".sh"))
        return
    rctx.download_and_extract(
        url = rctx.attr.urls,
        sha256 = rctx.attr.sha256,
        stripPrefix = rctx.attr.strip_prefix,
    )

_offline_or_pinned = repository_rule(
    implementation = _offline_or_pinned_impl,
    attrs = {
        "local_path": attr.string(),
        "sha256": attr.string(mandatory = True),
        "stand_in": attr.string_dict(),
        "strip_prefix": attr.string(),
        "urls": attr.string_list(mandatory = True),
    },
)

def offline_bazel_rules():
    """Declares rules_cc, rules_java and remote_coverage_tools (see module doc)."""
    _offline_or_pinned(
        name = "rules_cc",
        stand_in = _RULES_CC_STAND_IN,
        sha256 = "d0c573b94a6ef20ef6ff20154a23d0efcb409fb0e1ff0979cec318dfe42f0cdd",
        strip_prefix = "rules_cc-b1c40e1de81913a3c40e5948f78719c28152486d",
        urls = ["https://mirror.bazel.build/github.com/bazelbuild/rules_cc/archive/b1c40e1de81913a3c40e5948f78719c28152486d.zip"],
    )
    _offline_or_pinned(
        name = "rules_java",
        local_path = _DEBIAN_RULES_JAVA,
        sha256 = "bc81f1ba47ef5cc68ad32225c3d0e70b8c6f6077663835438da8d5733f917598",
        strip_prefix = "rules_java-7cf3cefd652008d0a64a419c34c13bdca6c8f178",
        urls = ["https://mirror.bazel.build/github.com/bazelbuild/rules_java/archive/7cf3cefd652008d0a64a419c34c13bdca6c8f178.zip"],
    )
    _offline_or_pinned(
        name = "remote_coverage_tools",
        stand_in = _COVERAGE_STAND_IN,
        sha256 = "cd14f1cb4559e4723e63b7e7b06d09fcc3bd7ba58d03f354cdff1439bd936a7d",
        urls = ["https://mirror.bazel.build/bazel_coverage_output_generator/releases/coverage_output_generator-v2.5.zip"],
    )
