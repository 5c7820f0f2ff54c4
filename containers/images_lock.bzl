"""Image digests: the base image every knlp image starts from, and the pushed images.

This file is a lock. `containers/image.py lock` (on a host that reaches the
registry) re-resolves BASE_IMAGE's tag and rewrites the digest;
`containers/image.py push PROFILE` records the digest of a pushed image in
PUSHED_IMAGES. Nothing else edits it.

BASE_IMAGE's digest was NOT resolved from this repository's build machines
(they reach no container registry). It is the amd64 OCI manifest digest that
Debian's image builders (debuerreotype/docker-debian-artifacts) publish for
`debian:bookworm-20251229` (Debian 12.12, snapshot 20251229T000000Z). Run
`containers/image.py lock --check` on a host with registry access to confirm.
"""

BASE_IMAGE = {
    "repository": "docker.io/library/debian",
    "tag": "bookworm-20251229",
    "digest": "sha256:4216e8fe27fdd803d2822d08ed9de39825a41a47e34c32b71a23ac074f91eaf4",
    "platform": "linux/amd64",
    "source": "https://github.com/debuerreotype/docker-debian-artifacts (published OCI manifest digest, amd64)",
    "verified_from_registry": False,
}

# target -> "sha256:..." of the pushed image (see images.bzl REGISTRY).
PUSHED_IMAGES = {}
