"""Pin, fetch, build and import a fork, offline, through the code the real forks use.

A tiny package with a C extension (and a submodule holding one of its headers)
is committed to a local git repository that plays the upstream remote. The
update tool pins its tag to a full SHA, the fetch code used by the `git_pin`
repository rule fetches it through a list of mirrors, and the packed tree is
built into a wheel with `pip wheel --no-build-isolation`, installed into a
temporary directory and imported.
"""

import copy
import os
import subprocess
import sys

import pytest

from third_party.forks import build_wheel, fork_fetch, pins, update

SETUP_PY = """\
from setuptools import Extension, setup

setup(
    name="tinyext",
    version="0.1.0",
    packages=["tinyext"],
    ext_modules=[Extension("tinyext._add", ["src/add.c"], include_dirs=["vendor/sub"])],
)
"""
ADD_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "tiny_consts.h"

static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b + TINY_OFFSET);
}

static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b + TINY_OFFSET"}, {0}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_add", NULL, -1, methods};
PyMODINIT_FUNC PyInit__add(void) { return PyModule_Create(&module); }
"""


def git(cwd, *args):
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
    )
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def commit_all(repo, message):
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    """An upstream fork (tag v1) with a submodule, a mirror that lacks v1, one that has it.

    Built once for the module; the tests only read these repositories.
    """
    tmp_path = tmp_path_factory.mktemp("repos")
    sub = tmp_path / "work/tinysub"
    sub.mkdir(parents=True)
    git(sub, "init", "--quiet", "-b", "main")
    (sub / "tiny_consts.h").write_text("#define TINY_OFFSET 100\n")
    sub_commit = commit_all(sub, "consts")

    fork = tmp_path / "work/tinyext"
    (fork / "tinyext").mkdir(parents=True)
    (fork / "src").mkdir()
    git(fork, "init", "--quiet", "-b", "main")
    (fork / "setup.py").write_text(SETUP_PY)
    (fork / "tinyext/__init__.py").write_text("from tinyext._add import add\n")
    (fork / "src/add.c").write_text(ADD_C)
    old = commit_all(fork, "package without the submodule")
    upstream = tmp_path / "upstream"
    (fork / ".gitmodules").write_text(
        f'[submodule "sub"]\n\tpath = vendor/sub\n\turl = {upstream}/tinysub.git\n'
    )
    git(fork, "add", ".gitmodules")
    # The gitlink alone, as `git submodule add` would record it (without cloning).
    git(fork, "update-index", "--add", "--cacheinfo", f"160000,{sub_commit},vendor/sub")
    git(fork, "commit", "--quiet", "-m", "vendor the constants")
    new = git(fork, "rev-parse", "HEAD")
    git(fork, "tag", "-a", "v1", "-m", "v1")

    upstream.mkdir()
    git(tmp_path, "clone", "--quiet", "--bare", str(fork), str(upstream / "tinyext.git"))
    git(tmp_path, "clone", "--quiet", "--bare", str(sub), str(upstream / "tinysub.git"))
    # A stale mirror: it has the fork only up to the old commit, and no submodule.
    stale = tmp_path / "mirror-stale"
    stale.mkdir()
    git(stale, "init", "--quiet", "--bare", "tinyext.git")
    git(fork, "push", "--quiet", str(stale / "tinyext.git"), f"{old}:refs/heads/main")
    # A good mirror: a full copy of both.
    good = tmp_path / "mirror-good"
    good.mkdir()
    git(
        tmp_path,
        "clone",
        "--quiet",
        "--mirror",
        str(upstream / "tinyext.git"),
        str(good / "tinyext.git"),
    )
    git(
        tmp_path,
        "clone",
        "--quiet",
        "--mirror",
        str(upstream / "tinysub.git"),
        str(good / "tinysub.git"),
    )

    forks = {
        "tinyext": {
            "remote": str(upstream / "tinyext.git"),
            "ref": "refs/tags/v1",
            "mirror_name": "tinyext.git",
            "mirrors": [],
            "submodules": ["vendor/sub"],
            "pair": "test",
        }
    }
    # What is known before resolution: the ref and a short prefix, like the real lock.
    lock = {"version": 1, "forks": {"tinyext": pins.empty_entry(forks["tinyext"], new[:9])}}
    return {
        "forks": forks,
        "lock": lock,
        "commit": new,
        "old": old,
        "sub_commit": sub_commit,
        "stale": stale,
        "good": good,
        "upstream": upstream,
    }


@pytest.fixture
def world(repos, tmp_path):
    """The shared repositories, a fresh lock, and this test's own output directory."""
    return dict(repos, tmp=tmp_path, lock=copy.deepcopy(repos["lock"]))


def pinned(world):
    """The test fork resolved by the update tool from the upstream remote."""
    lock = update.update(world["forks"], world["lock"], [], set(), [], log=lambda m: None)
    assert pins.check_lock(world["forks"], lock) == []
    return lock["forks"]["tinyext"]


def fetch(world, entry, roots, out="src.tar", log=None, **overrides):
    args = dict(
        name="tinyext",
        commit=entry["commit"],
        remote=entry["remote"],
        mirror_name="tinyext.git",
        mirror_roots=roots,
        work=world["tmp"] / "fetch-work",
        out_tar=world["tmp"] / out,
        submodules=[(p, s["commit"], s["url"]) for p, s in entry["submodules"].items()],
        archive_sha256=entry["archive_sha256"],
        commit_prefix=entry["commit_prefix"],
        log=log or (lambda m: None),
    )
    args.update(overrides)
    return fork_fetch.fetch_fork(**args)


def test_update_pins_the_tag_to_the_full_sha(world):
    entry = pinned(world)
    assert entry["commit"] == world["commit"]
    assert entry["submodules"] == {
        "vendor/sub": {"url": f"{world['upstream']}/tinysub.git", "commit": world["sub_commit"]}
    }
    assert len(entry["archive_sha256"]) == 64 and entry["resolved_at"].endswith("Z")


def test_fetch_builds_and_imports_through_a_mirror_that_lacks_the_commit(world):
    entry = pinned(world)
    messages = []
    roots = [str(world["stale"]), str(world["good"])]
    info = fetch(world, entry, roots, log=messages.append)
    # The stale mirror was tried first and skipped; the good mirror served fork and submodule.
    assert any(str(world["stale"]) in m and "next URL" in m for m in messages)
    assert info["served_by"] == f"{world['good']}/tinyext.git"
    assert info["submodules"]["vendor/sub"]["served_by"] == f"{world['good']}/tinysub.git"
    assert info["archive_sha256"] == entry["archive_sha256"]

    # The builder behind the fork_wheel rule, minus its CUDA checks.
    wheel = build_wheel.build(
        "tinyext",
        world["tmp"] / "src.tar",
        info,
        world["tmp"] / "wheels",
        ["setuptools"],
        log=sys.stderr,
        cuda=False,
    )
    assert wheel.name.startswith("tinyext-0.1.0-")
    pip = [sys.executable, "-m", "pip"]
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    site = world["tmp"] / "site"
    install = subprocess.run(
        [*pip, "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert install.returncode == 0, install.stderr
    run = subprocess.run(
        [sys.executable, "-c", "import tinyext; print(tinyext.add(2, 3))"],
        capture_output=True,
        text=True,
        env=dict(env, PYTHONPATH=str(site)),
        cwd=world["tmp"],
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "105"  # 2 + 3 + TINY_OFFSET from the submodule's header


def test_the_same_commit_packs_to_the_same_archive(world):
    entry = pinned(world)
    first = fetch(world, entry, [str(world["good"])], out="a.tar")
    second = fetch(world, entry, [], out="b.tar")  # from upstream this time
    assert first["archive_sha256"] == second["archive_sha256"] == entry["archive_sha256"]
    assert (world["tmp"] / "a.tar").read_bytes() == (world["tmp"] / "b.tar").read_bytes()


def test_a_commit_missing_everywhere_fails_naming_every_url(world):
    entry = dict(pinned(world), commit="0123456789abcdef0123456789abcdef01234567")
    with pytest.raises(fork_fetch.FetchError) as err:
        fetch(world, entry, [str(world["stale"]), str(world["good"])], archive_sha256="")
    message = str(err.value)
    assert "0123456789abcdef0123456789abcdef01234567 was found at none of 3 URL(s)" in message
    for url in (world["stale"], world["good"], world["upstream"]):
        assert str(url) in message


def test_a_short_or_empty_sha_is_refused_before_any_fetch(world):
    entry = pinned(world)
    for commit in ("", world["commit"][:9], world["commit"].upper()):
        with pytest.raises(fork_fetch.FetchError, match="full 40-hex commit SHA") as err:
            fetch(world, dict(entry, commit=commit), [], commit_prefix=world["commit"][:9])
        assert "bazel run //third_party/forks:update -- tinyext" in str(err.value)
    assert not (world["tmp"] / "fetch-work").exists()


def test_a_wrong_archive_hash_fails(world):
    entry = dict(pinned(world), archive_sha256="f" * 64)
    with pytest.raises(fork_fetch.FetchError, match="the lock records f{64}"):
        fetch(world, entry, [])


def test_a_submodule_pin_that_disagrees_with_the_fork_fails(world):
    entry = pinned(world)
    subs = [("vendor/sub", world["old"], f"{world['upstream']}/tinysub.git")]
    with pytest.raises(fork_fetch.FetchError, match="records submodule vendor/sub at"):
        fetch(world, entry, [], submodules=subs)


def test_a_moved_tag_is_an_error_unless_bumped(world):
    lock = world["lock"]
    lock["forks"]["tinyext"]["commit_prefix"] = world["old"][:9]
    with pytest.raises(fork_fetch.FetchError, match="the ref moved. Pass --bump tinyext"):
        update.update(world["forks"], lock, [], set(), [], log=lambda m: None)
    bumped = update.update(world["forks"], lock, [], {"tinyext"}, [], log=lambda m: None)
    assert bumped["forks"]["tinyext"]["commit"] == world["commit"]


def test_a_resolved_pin_is_kept_until_bumped(world):
    lock = dict(world["lock"], forks={"tinyext": pinned(world)})
    kept = update.update(world["forks"], lock, [], set(), [], log=lambda m: None)
    assert kept == dict(lock, forks=lock["forks"])


def test_a_bare_commit_pin_resolves_its_prefix(world):
    forks = {"tinyext": dict(world["forks"]["tinyext"], ref="")}
    lock = {
        "version": 1,
        "forks": {"tinyext": pins.empty_entry(forks["tinyext"], world["old"][:9])},
    }
    forks["tinyext"]["submodules"] = []
    lock["forks"]["tinyext"]["submodules"] = {}
    new = update.update(forks, lock, [], set(), [], log=lambda m: None)
    assert new["forks"]["tinyext"]["commit"] == world["old"]


def test_the_builder_names_what_a_cuda_build_lacks():
    env = {"KNLP_NVCC": "", "KNLP_ACCELERATOR": "cpu", "KNLP_TORCH_PIN": "2.13.0+cpu"}
    problems = build_wheel.check_environment(
        "vllm", ["torch", "cmake"], env, find_spec=lambda m: None if m == "cmake" else object()
    )
    assert len(problems) == 3
    assert "nvcc" in problems[0] and "./setup.sh" in problems[0]
    assert "--config=cuda" in problems[1] and "2.13.0+cpu" in problems[1]
    assert "imports cmake" in problems[2] and "requirements.in" in problems[2]


def test_a_server_that_refuses_fetch_by_sha_is_searched_through_its_refs(world, monkeypatch):
    """Protocol v0 refuses a want of a commit no ref points at; the fetch then takes all refs."""
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "protocol.version")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "0")
    entry = dict(pinned(world), commit=world["old"], archive_sha256="", commit_prefix="")
    messages = []
    info = fetch(world, entry, [str(world["good"])], log=messages.append, submodules=[])
    assert info["commit"] == world["old"]
    assert messages[-1] == f"fetched {world['old']} from {world['good']}/tinyext.git (all refs)"


def test_update_resolves_a_branch_through_the_fork_mirror_list(world):
    # The remote is unreachable; the fork's mirror list names a local mirror
    # directory that does not exist, then a mirror that has the branch. The
    # lock knows the full commit (as for FlashInfer's paper pin) but nothing else.
    fork = dict(
        world["forks"]["tinyext"],
        remote=str(world["tmp"] / "unreachable/tinyext.git"),
        ref="refs/heads/main",
        mirrors=[str(world["tmp"] / "no-mirror/tinyext.git"), str(world["good"] / "tinyext.git")],
    )
    forks = {"tinyext": fork}
    assert pins.check_declarations(forks) == []
    lock = {"version": 1, "forks": {"tinyext": pins.empty_entry(fork, world["commit"])}}
    notes = []
    new = update.update(forks, lock, [], set(), [], log=notes.append)
    entry = new["forks"]["tinyext"]
    assert pins.check_lock(forks, new) == []
    assert entry["commit"] == world["commit"] and entry["commit_prefix"] == world["commit"]
    assert entry["submodules"]["vendor/sub"]["commit"] == world["sub_commit"]
    assert len(entry["archive_sha256"]) == 64
    assert any(str(world["good"]) in n for n in notes), notes
    # The same archive as a pin resolved from the remote itself.
    assert entry["archive_sha256"] == pinned(world)["archive_sha256"]


def test_mirror_list_order_and_refusals():
    urls = fork_fetch.candidate_urls(
        ["/env"], "x.git", "https://h/x.git", ["/local/x.git", "ssh://s/x.git"]
    )
    assert urls == ["/env/x.git", "/local/x.git", "ssh://s/x.git", "https://h/x.git"]
    bad = {"x": {"remote": "https://h/x.git", "ref": "", "mirror_name": "x.git",
                 "mirrors": ["https://h/x.git"], "submodules": [], "pair": "p"}}  # fmt: skip
    assert pins.check_declarations(bad) == [
        "fork x: mirrors list the remote; it is always tried last"
    ]


def test_no_mirror_answering_fails_naming_every_url(world):
    fork = dict(
        world["forks"]["tinyext"],
        remote=str(world["tmp"] / "unreachable/tinyext.git"),
        ref="refs/heads/main",
        mirrors=[str(world["tmp"] / "no-mirror/tinyext.git")],
    )
    lock = {"version": 1, "forks": {"tinyext": pins.empty_entry(fork)}}
    with pytest.raises(fork_fetch.FetchError) as err:
        update.update({"tinyext": fork}, lock, [], set(), [], log=lambda m: None)
    assert "no-mirror/tinyext.git" in str(err.value) and "unreachable/tinyext.git" in str(err.value)
