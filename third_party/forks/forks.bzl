"""The serving forks the decode paper builds on: each one declared once.

`FORKS` is the single declaration of every fork: its remote, the ref it is
meant to track, the submodules the build needs, and what it is for. The commit
each one is pinned to lives in forks.lock.json, which
`bazel run //third_party/forks:update` writes on a host that reaches the
remotes. This file is plain data (a Starlark dict that is also a Python
literal): third_party/forks/pins.py reads it for the update tool, the tests and
the reproduction pipeline; `fork_repositories()` below declares one
`git_pin` repository `@fork_<name>` per entry.

Fields:
  remote: the upstream URL (the fork's own repository).
  ref: the ref the pin follows (refs/tags/..., refs/heads/...), or "" for a
    pin that names a bare commit (its known prefix is then in the lock).
  mirror_name: the repository's name under a mirror root
    (KNLP_FORK_MIRRORS); the mirror URL is <root>/<mirror_name>.
  mirrors: this fork's own mirror list, tried in order after the
    KNLP_FORK_MIRRORS roots and before `remote`: the local mirror directory,
    then the group's server (prune). A mirror that lacks the commit is skipped.
  submodules: paths of submodules the build needs; their commits are pinned in
    the lock too.
  pair: the pin set the fork belongs to ("paper" is the set that serves end to
    end; "upstream" is the upstream-track set).
  build: how //third_party/forks builds its wheel: the Python modules the
    build imports (with --no-build-isolation they must be in the pinned venv)
    and extra environment variables.
"""

load("//tools/bazel:git_pin.bzl", "git_pin")

FORKS = {
    "flashinfer": {
        "remote": "https://github.com/mcgrof/flashinfer.git",
        "ref": "refs/heads/paper-memory-decode-v0.18",
        "mirror_name": "flashinfer.git",
        "mirrors": ["/mnt/prune/git/flashinfer.git", "ssh://prune/srv/git/flashinfer.git"],
        "submodules": ["3rdparty/cutlass", "3rdparty/spdlog"],
        "pair": "paper",
        "purpose": "independent K/V dtypes in prefill and decode (K16/V8)",
        "build": {"requires": ["torch", "ninja", "packaging"], "env": {}},
    },
    "flashinfer_upstream": {
        "remote": "https://github.com/mcgrof/flashinfer.git",
        "ref": "",
        "mirror_name": "flashinfer.git",
        "mirrors": ["/mnt/prune/git/flashinfer.git", "ssh://prune/srv/git/flashinfer.git"],
        "submodules": ["3rdparty/cutlass", "3rdparty/spdlog"],
        "pair": "upstream",
        "purpose": "upstream-track FlashInfer, paired with vllm_upstream",
        "build": {"requires": ["torch", "ninja", "packaging"], "env": {}},
    },
    "lmcache": {
        "remote": "https://github.com/mcgrof/LMCache.git",
        "ref": "refs/heads/asymmetric-kv-codec",
        "mirror_name": "LMCache.git",
        "mirrors": ["/mnt/prune/git/LMCache.git", "ssh://prune/srv/git/LMCache.git"],
        "submodules": [],
        "pair": "paper",
        "purpose": "K16/V8 storage codec (0.75 storage ratio, K bit-exact)",
        "build": {"requires": ["torch", "setuptools_scm", "packaging"], "env": {}},
    },
    "vllm": {
        "remote": "https://github.com/mcgrof/vllm.git",
        "ref": "refs/heads/paper-memory-decode-v0.18",
        "mirror_name": "vllm.git",
        "mirrors": ["/mnt/prune/git/vllm.git", "ssh://prune/srv/git/vllm.git"],
        "submodules": [],
        "pair": "paper",
        "purpose": "asymmetric K/V cache plumbing (branch asymmetric-kv-plumbing)",
        "build": {
            "requires": ["torch", "cmake", "ninja", "setuptools_scm", "packaging", "jinja2"],
            "env": {"VLLM_TARGET_DEVICE": "cuda"},
        },
    },
    "vllm_upstream": {
        "remote": "https://github.com/mcgrof/vllm.git",
        "ref": "",
        "mirror_name": "vllm.git",
        "mirrors": ["/mnt/prune/git/vllm.git", "ssh://prune/srv/git/vllm.git"],
        "submodules": [],
        "pair": "upstream",
        "purpose": "upstream-track vLLM, paired with flashinfer_upstream",
        "build": {
            "requires": ["torch", "cmake", "ninja", "setuptools_scm", "packaging", "jinja2"],
            "env": {"VLLM_TARGET_DEVICE": "cuda"},
        },
    },
}

def fork_repositories():
    """Declares @fork_<name> for every fork; none is fetched until a target needs it."""
    for name, fork in FORKS.items():
        git_pin(
            name = "fork_" + name,
            fork = name,
            remote = fork["remote"],
            ref = fork["ref"],
            mirror_name = fork["mirror_name"],
            mirrors = fork["mirrors"],
            lock = "//third_party/forks:forks.lock.json",
        )
