"""The checked-in fork declarations and lock are consistent, and never invent a SHA."""

import json

import pytest

from third_party.forks import fork_fetch, pins

FORKS = pins.load_forks()
LOCK = pins.load_lock()


def test_declarations_are_valid():
    assert pins.check_declarations(FORKS) == []


def test_the_lock_matches_the_declarations():
    assert pins.check_lock(FORKS, LOCK) == []


def test_the_paper_pair_and_lmcache_are_declared():
    paper = {name for name, fork in FORKS.items() if fork["pair"] == "paper"}
    assert paper == {"vllm", "flashinfer", "lmcache"}
    assert "3rdparty/cutlass" in FORKS["flashinfer"]["submodules"]


def test_every_commit_is_full_or_absent():
    """A commit is either the full SHA the update tool resolved, or empty with its known prefix."""
    for name, entry in LOCK["forks"].items():
        commit = entry["commit"]
        assert commit == "" or fork_fetch.is_full_sha(commit), name
        if commit == "":
            assert entry["resolved_at"] == "" and entry["archive_sha256"] == "", name
            assert all(s["commit"] == "" for s in entry["submodules"].values()), name


def test_check_lock_catches_a_short_sha_in_the_commit_field():
    lock = json.loads(json.dumps(LOCK))
    lock["forks"]["vllm"]["commit"] = "2315e62e2"
    problems = pins.check_lock(FORKS, lock)
    assert any("not a full 40-hex SHA" in p and "commit_prefix" in p for p in problems)


def test_check_lock_catches_a_commit_that_contradicts_its_prefix():
    lock = json.loads(json.dumps(LOCK))
    lock["forks"]["vllm"]["commit_prefix"] = "abcdef123"
    lock["forks"]["vllm"]["commit"] = "0" * 40
    assert any("does not start with abcdef123" in p for p in pins.check_lock(FORKS, lock))


def test_check_lock_catches_a_stale_entry():
    lock = json.loads(json.dumps(LOCK))
    lock["forks"]["lmcache"]["ref"] = "refs/heads/main"
    del lock["forks"]["vllm_upstream"]
    problems = pins.check_lock(FORKS, lock)
    assert any("lmcache: lock ref" in p for p in problems)
    assert any("vllm_upstream is declared" in p for p in problems)


def test_check_declarations_rejects_a_branch_name_without_refs():
    forks = json.loads(json.dumps(FORKS))
    forks["lmcache"]["ref"] = "asymmetric-kv-codec"
    (problem,) = pins.check_declarations(forks)
    assert "refs/heads/<branch>" in problem


@pytest.mark.parametrize("name", sorted(FORKS))
def test_an_unresolved_fork_is_refused_by_the_fetch_script(name, tmp_path, capsys):
    """What the git_pin rule runs: exit 1 and the update command, before any network use."""
    entry = LOCK["forks"][name]
    # Once the lock is resolved, the same check runs on the entry with its commit removed.
    entry = dict(entry, commit="") if pins.resolved(LOCK, name) else entry
    code = fork_fetch.main(
        [
            "--name",
            name,
            "--commit",
            entry["commit"],
            "--commit-prefix",
            entry["commit_prefix"],
            "--remote",
            "/nonexistent/remote.git",
            "--mirror-name",
            FORKS[name]["mirror_name"],
            "--work",
            str(tmp_path / "work"),
            "--out-tar",
            str(tmp_path / "src.tar"),
            "--info",
            str(tmp_path / "info.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"bazel run //third_party/forks:update -- {name}" in err
    assert repr(entry["commit_prefix"]) in err or "no commit known" in err
    assert not (tmp_path / "src.tar").exists()


def test_mirror_roots_parse_in_order():
    roots = fork_fetch.parse_mirror_roots("/srv/git/, ssh://prune/srv/git  file:///m")
    assert roots == ["/srv/git", "ssh://prune/srv/git", "file:///m"]
    assert fork_fetch.candidate_urls(roots[:2], "vllm.git", "https://x/vllm.git") == [
        "/srv/git/vllm.git",
        "ssh://prune/srv/git/vllm.git",
        "https://x/vllm.git",
    ]
