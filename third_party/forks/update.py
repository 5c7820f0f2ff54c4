"""Resolve the forks' refs to full commit SHAs and rewrite forks.lock.json.

    bazel run //third_party/forks:update                 # resolve what is unresolved
    bazel run //third_party/forks:update -- vllm         # only this fork
    bazel run //third_party/forks:update -- --bump lmcache   # re-resolve a moving ref

Run it on a host that reaches the remotes or a mirror: each fork is looked
for under the KNLP_FORK_MIRRORS roots, then in its own `mirrors` list
(forks.bzl: the local mirror directory, then prune), then at its remote.
Like pip-compile, it keeps a commit that is already resolved unless the fork
is named with --bump or its declaration in forks.bzl changed. For each fork
it:

  1. resolves the commit: `git ls-remote <url> <ref>` (tags peeled) for a ref
     pin; for a bare-commit pin (no ref), a fetch of the branches and tags and
     `git rev-parse <prefix>^{commit}`. A known prefix in the lock must match
     the result (a moved tag is an error, not an update);
  2. fetches that commit through the same code as the repository rule
     (fork_fetch.py), reads each declared submodule's gitlink and URL, fetches
     those, packs the archive and records its sha256;
  3. writes the lock atomically.
"""

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from third_party.forks import fork_fetch, pins


def ls_remote(url, ref):
    """The commit `ref` names at `url` (the peeled commit for an annotated tag), or None."""
    proc = fork_fetch.git(["ls-remote", url, ref, f"{ref}^{{}}"], cwd=None, check=False)
    if proc.returncode != 0:
        raise fork_fetch.FetchError(f"git ls-remote {url} {ref}: {proc.stderr.strip()}")
    found = dict(reversed(line.split("\t", 1)) for line in proc.stdout.splitlines() if "\t" in line)
    return found.get(f"{ref}^{{}}") or found.get(ref)


def resolve_prefix(url, prefix, work):
    """The full SHA of the commit whose SHA starts with `prefix`, fetched from `url`."""
    repo = Path(work) / "resolve"
    repo.mkdir(parents=True, exist_ok=True)
    fork_fetch.git(["init", "--quiet"], repo)
    fork_fetch.git(
        [
            "fetch",
            "--quiet",
            "--filter=blob:none",
            url,
            "+refs/heads/*:refs/knlp-mirror/heads/*",
            "+refs/tags/*:refs/knlp-mirror/tags/*",
        ],
        repo,
    )
    proc = fork_fetch.git(["rev-parse", "--verify", "--quiet", f"{prefix}^{{commit}}"], repo, False)
    if proc.returncode != 0:
        raise fork_fetch.FetchError(f"no commit {prefix}... is reachable from a ref at {url}")
    return proc.stdout.strip()


def fork_urls(fork, mirror_roots):
    """Where the fork is looked for: KNLP_FORK_MIRRORS roots, its mirror list, its remote."""
    return fork_fetch.candidate_urls(
        mirror_roots, fork["mirror_name"], fork["remote"], fork.get("mirrors", [])
    )


def resolve_commit(name, fork, entry, mirror_roots, work, log):
    urls = fork_urls(fork, mirror_roots)
    prefix = entry.get("commit_prefix", "")
    errors = []
    for url in urls:
        try:
            commit = (
                ls_remote(url, fork["ref"]) if fork["ref"] else resolve_prefix(url, prefix, work)
            )
        except fork_fetch.FetchError as err:
            errors.append(f"  {url}: {err}")
            continue
        if commit is None:
            errors.append(f"  {url}: has no {fork['ref']}")
            continue
        if prefix and not commit.startswith(prefix):
            raise fork_fetch.FetchError(
                f"fork {name}: {fork['ref']} at {url} is {commit}, but the lock's known prefix is "
                f"{prefix}; the ref moved. Pass --bump {name} to accept the new commit."
            )
        log(f"{name}: {fork['ref'] or prefix} -> {commit} ({url})")
        return commit
    raise fork_fetch.FetchError(f"fork {name}: could not resolve the pin:\n" + "\n".join(errors))


def submodule_urls(repo, paths):
    """{path: url} from the checked-out fork's .gitmodules for the declared paths."""
    gitmodules = Path(repo) / ".gitmodules"
    if not gitmodules.exists():
        if paths:
            raise fork_fetch.FetchError(f"{repo} has no .gitmodules, but submodules are declared")
        return {}
    out = fork_fetch.git(
        ["config", "-f", str(gitmodules), "--get-regexp", r"^submodule\..*\.(path|url)$"], repo
    ).stdout
    by_name = {}
    for line in out.splitlines():
        key, value = line.split(" ", 1)
        section, field = key.rsplit(".", 1)
        by_name.setdefault(section, {})[field] = value
    urls = {v["path"]: v.get("url", "") for v in by_name.values() if "path" in v}
    missing = [p for p in paths if p not in urls]
    if missing:
        raise fork_fetch.FetchError(f"declared submodules {missing} are not in .gitmodules")
    return {p: urls[p] for p in paths}


def resolve_fork(name, fork, entry, mirror_roots, work, log):
    """A new, fully resolved lock entry for `name`."""
    commit = resolve_commit(name, fork, entry, mirror_roots, work, log)
    urls = fork_urls(fork, mirror_roots)
    # Checked out under a local mirror root, so that packing it below (through
    # the repository rule's code) fetches the fork from here, not again.
    local_root = Path(work) / "local"
    repo = local_root / fork["mirror_name"]
    fork_fetch.checkout(repo, commit, urls, log)
    subs = {}
    for path, url in submodule_urls(repo, fork["submodules"]).items():
        sha = fork_fetch.gitlink(repo, path)
        if sha is None:
            raise fork_fetch.FetchError(f"fork {name} at {commit}: {path} is not a submodule")
        subs[path] = {"url": url, "commit": sha}
    info = fork_fetch.fetch_fork(
        name,
        commit,
        fork["remote"],
        fork["mirror_name"],
        [str(local_root), *mirror_roots],
        Path(work) / "pack",
        Path(work) / "src.tar",
        [(p, s["commit"], s["url"]) for p, s in subs.items()],
        log=log,
        mirrors=fork.get("mirrors", []),
    )
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "remote": fork["remote"],
        "ref": fork["ref"],
        "commit": commit,
        "commit_prefix": entry.get("commit_prefix", ""),
        "archive_sha256": info["archive_sha256"],
        "resolved_at": now,
        "submodules": subs,
    }


def update(forks, lock, names, bump, mirror_roots, log=print):
    """Returns the new lock; raises FetchError if a named fork cannot be resolved."""
    entries = {n: e for n, e in lock.get("forks", {}).items() if n in forks}
    for name in names or forks:
        if name not in forks:
            raise pins.PinError(f"unknown fork {name!r}; declared: {', '.join(sorted(forks))}")
        fork = forks[name]
        entry = entries.get(name) or pins.empty_entry(fork)
        changed = entry.get("remote") != fork["remote"] or entry.get("ref") != fork["ref"]
        if pins.resolved({"forks": {name: entry}}, name) and not changed and name not in bump:
            log(f"{name}: kept {entry['commit']}")
            continue
        if changed or name in bump:
            # A new ref or an explicit bump: the old prefix no longer constrains the commit.
            entry = pins.empty_entry(fork, "" if fork["ref"] else entry.get("commit_prefix", ""))
        with tempfile.TemporaryDirectory(prefix=f"knlp-update-{name}-") as work:
            entries[name] = resolve_fork(name, fork, entry, mirror_roots, work, log)
    for name, fork in forks.items():
        entries.setdefault(name, pins.empty_entry(fork))
    return dict(lock, forks=dict(sorted(entries.items())))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("forks", nargs="*", help="forks to resolve (default: all)")
    parser.add_argument("--bump", action="append", default=[], help="re-resolve this fork's ref")
    parser.add_argument("--lock", help="lock file to rewrite (default: the workspace's)")
    args = parser.parse_args(argv)
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    lock_path = Path(args.lock) if args.lock else None
    if lock_path is None:
        lock_path = (
            Path(workspace) / "third_party/forks/forks.lock.json" if workspace else pins.LOCK
        )
    forks_bzl = lock_path.with_name("forks.bzl")
    try:
        forks = pins.load_forks(forks_bzl)
        lock = pins.load_lock(lock_path)
        new = update(
            forks,
            lock,
            args.forks + args.bump,
            set(args.bump),
            fork_fetch.parse_mirror_roots(os.environ.get("KNLP_FORK_MIRRORS", "")),
        )
    except (fork_fetch.FetchError, pins.PinError, subprocess.SubprocessError) as err:
        print(f"knlp: {err}", file=sys.stderr)
        return 1
    pins.write_lock(new, lock_path)
    print(f"wrote {lock_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
