"""The repositories Bazel 4.2.3 needs before it can build anything, from Debian.

Bazel's own WORKSPACE suffix would download `rules_cc`, `rules_java` and
`remote_coverage_tools` from GitHub, which these machines cannot reach.
`offline_bazel_rules()` declares them first, so the suffix's declarations are
skipped, and `platforms` with them. rules_java and platforms come from
Debian's bazel-rules-java and bazel-platforms (./setup.sh installs both);
rules_cc and remote_coverage_tools are small stand-ins below (see
_RULES_CC_STAND_IN for why not bazel-rules-cc). Where a package is absent:
platforms is the copy in Bazel's install base, the one Bazel would use
itself; on a host without bazel-rules-java the archives that Bazel 4.2.3
pins are downloaded and checked against their sha256.
"""

# Where Debian's packages install each repository.
_DEBIAN_RULES_JAVA = "/usr/share/bazel/rules/java"
_DEBIAN_PLATFORMS = "/usr/share/bazel/tools/platforms"

# Debian's bazel-rules-cc 0.0.4 does not load in 4.2.3 (its cc_flags_supplier.bzl
# loads use_cpp_toolchain, which 4.2.3's @bazel_tools lacks), and bazel-skylib
# is needed only by it; the native rules are all 4.2.3 needs from rules_cc.
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
    if rctx.attr.local_path and rctx.path(rctx.attr.local_path).exists:
        for child in rctx.path(rctx.attr.local_path).readdir():
            rctx.symlink(child, child.basename)
        return
    if rctx.attr.builtin:
        # Bazel's own copy, beside its embedded tools in the install base.
        embedded = rctx.path(Label("@bazel_tools//tools:BUILD")).realpath.dirname.dirname
        for child in embedded.dirname.get_child(rctx.attr.builtin).readdir():
            rctx.symlink(child, child.basename)
        return
    if rctx.attr.stand_in and rctx.path(_DEBIAN_RULES_JAVA).exists:
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
        "builtin": attr.string(doc = "fallback: this directory of Bazel's install base"),
        "local_path": attr.string(),
        "sha256": attr.string(),
        "stand_in": attr.string_dict(),
        "strip_prefix": attr.string(),
        "urls": attr.string_list(),
    },
)

def offline_bazel_rules():
    """Declares rules_cc, rules_java, platforms and remote_coverage_tools."""
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
    _offline_or_pinned(
        name = "platforms",
        local_path = _DEBIAN_PLATFORMS,
        builtin = "platforms",
    )
