"""Fetch exactly one pinned commit of a fork, verify it, and pack it as a tar.

The `git_pin` repository rule (tools/bazel/git_pin.bzl) runs this script; the
integration test (fork_pin_test.py) drives the same functions directly. It is
plain standard library because the repository rule runs it with the host
interpreter before any venv exists.

For the fork and for each pinned submodule it tries an ordered list of URLs:
every mirror root named in KNLP_FORK_MIRRORS (joined with the repository's
mirror name), then the upstream remote. From each it fetches exactly the pinned
commit (by SHA; if the server refuses a fetch by SHA, all its branches and tags,
and then looks for the commit). A URL that does not have the commit is noted
and the next one is tried; when none has it the fetch fails with every attempt
listed. The checkout is verified (`git rev-parse HEAD` equals the lock), each
submodule's gitlink in the fork must equal the submodule commit in the lock,
and the result is written as one tar (`git archive` of the fork with every
submodule's archive under its path), whose sha256 is checked against the lock
when the lock records one.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
UPDATE_HINT = (
    "resolve it on a host that reaches the remote with "
    "`bazel run //third_party/forks:update -- {name}` and commit forks.lock.json"
)


class FetchError(Exception):
    """A failure with a message meant for the user, not a stack trace."""


def is_full_sha(value):
    return bool(FULL_SHA.match(value or ""))


def require_full_sha(name, commit, prefix=""):
    """Refuses a pin that is not a full 40-hex commit, naming what is known."""
    if is_full_sha(commit):
        return
    known = f"known prefix {prefix!r}" if prefix else "no commit known"
    got = f"commit {commit!r}" if commit else "no commit"
    raise FetchError(
        f"fork {name}: the lock has {got} ({known}); a fork is fetched only at a "
        f"full 40-hex commit SHA. " + UPDATE_HINT.format(name=name)
    )


def parse_mirror_roots(value):
    """KNLP_FORK_MIRRORS: mirror roots separated by commas or whitespace, in order."""
    return [root.strip().rstrip("/") for root in re.split(r"[,\s]+", value or "") if root.strip()]


def candidate_urls(mirror_roots, mirror_name, remote, mirrors=()):
    """The URLs to try, in order: each mirror root + mirror_name, then the fork's own
    mirror list (forks.bzl `mirrors`), then the remote; each URL once."""
    urls = [f"{root}/{mirror_name}" for root in mirror_roots] + list(mirrors)
    if remote:
        urls.append(remote)
    return list(dict.fromkeys(urls))


def git(args, cwd, check=True):
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", LC_ALL="C")
    # No user or system configuration may change what is fetched.
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise FetchError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc


def has_commit(repo, commit):
    return git(["cat-file", "-e", f"{commit}^{{commit}}"], repo, check=False).returncode == 0


def fetch_commit(repo, commit, urls, log=print):
    """Fetches `commit` into the git repository `repo` from the first URL that has it.

    Returns the URL that served it; raises FetchError listing every attempt.
    """
    attempts = []
    for url in urls:
        proc = git(["fetch", "--quiet", "--no-tags", "--depth=1", url, commit], repo, check=False)
        if proc.returncode == 0 and has_commit(repo, commit):
            log(f"fetched {commit} from {url}")
            return url
        by_sha = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        # Servers that refuse a fetch by SHA: take their branches and tags and look.
        proc = git(
            [
                "fetch",
                "--quiet",
                "--no-tags",
                url,
                "+refs/heads/*:refs/knlp-mirror/heads/*",
                "+refs/tags/*:refs/knlp-mirror/tags/*",
            ],
            repo,
            check=False,
        )
        if proc.returncode == 0 and has_commit(repo, commit):
            log(f"fetched {commit} from {url} (all refs)")
            return url
        if proc.returncode == 0:
            reason = "reachable, but does not have the commit"
        else:
            reason = (proc.stderr.strip().splitlines() or by_sha)[-1]
        attempts.append(f"  {url}: {reason}")
        log(f"{url} does not serve {commit}; trying the next URL")
    raise FetchError(
        f"commit {commit} was found at none of {len(urls)} URL(s):\n" + "\n".join(attempts)
    )


def checkout(repo, commit, urls, log=print):
    """A fresh repository at `repo` with `commit` checked out and verified."""
    repo = Path(repo)
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    git(["init", "--quiet"], repo)
    url = fetch_commit(repo, commit, urls, log)
    git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit], repo)
    head = git(["rev-parse", "HEAD"], repo).stdout.strip()
    if head != commit:
        raise FetchError(f"checked out {head} from {url}, but the lock pins {commit}")
    return url


def gitlink(repo, path):
    """The commit the fork's tree records for the submodule at `path`, or None."""
    out = git(["ls-tree", "HEAD", "--", path], repo).stdout.strip()
    if not out:
        return None
    mode, kind, sha = out.split("\t", 1)[0].split()
    return sha if kind == "commit" and mode == "160000" else None


def write_archive(out, parts):
    """One tar of several `git archive`s: [(prefix, repo, commit)], in order."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as dst:
        for prefix, repo, commit in parts:
            proc = subprocess.run(
                ["git", "archive", "--format=tar", f"--prefix={prefix}", commit],
                cwd=repo,
                capture_output=True,
                check=False,
            )
            if proc.returncode != 0:
                raise FetchError(f"git archive {commit} failed: {proc.stderr.decode().strip()}")
            with tempfile.TemporaryFile() as buf:
                buf.write(proc.stdout)
                buf.seek(0)
                with tarfile.open(fileobj=buf, mode="r:") as src:
                    for member in src:
                        data = src.extractfile(member) if member.isfile() else None
                        dst.addfile(member, data)
    os.replace(tmp, out)
    return sha256_file(out)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_fork(
    name,
    commit,
    remote,
    mirror_name,
    mirror_roots,
    work,
    out_tar,
    submodules=(),
    archive_sha256="",
    commit_prefix="",
    log=print,
    mirrors=(),
):
    """Fetches, verifies and packs one fork; returns a dict describing what was done.

    submodules: [(path, commit, url)] as the lock records them. mirrors: the
    fork's own mirror URLs (forks.bzl), tried after the mirror roots.
    """
    require_full_sha(name, commit, commit_prefix)
    work = Path(work)
    urls = candidate_urls(mirror_roots, mirror_name, remote, mirrors)
    served_by = checkout(work / "fork", commit, urls, log)
    parts = [("", work / "fork", commit)]
    subs = {}
    for index, (path, sub_commit, sub_url) in enumerate(submodules):
        require_full_sha(f"{name} submodule {path}", sub_commit)
        recorded = gitlink(work / "fork", path)
        if recorded is None:
            raise FetchError(f"fork {name} at {commit} has no submodule at {path}")
        if recorded != sub_commit:
            raise FetchError(
                f"fork {name} at {commit} records submodule {path} at {recorded}, "
                f"but the lock pins {sub_commit}; " + UPDATE_HINT.format(name=name)
            )
        sub_name = sub_url.rstrip("/").rsplit("/", 1)[-1]
        sub_urls = candidate_urls(mirror_roots, sub_name, sub_url)
        sub_repo = work / f"submodule-{index}"
        subs[path] = {
            "commit": sub_commit,
            "served_by": checkout(sub_repo, sub_commit, sub_urls, log),
        }
        parts.append((path.rstrip("/") + "/", sub_repo, sub_commit))
    digest = write_archive(out_tar, parts)
    if archive_sha256 and digest != archive_sha256:
        raise FetchError(
            f"fork {name}: the archive of {commit} has sha256 {digest}, but the lock records "
            f"{archive_sha256}; " + UPDATE_HINT.format(name=name)
        )
    return {
        "name": name,
        "remote": remote,
        "commit": commit,
        "served_by": served_by,
        "submodules": subs,
        "archive_sha256": digest,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--commit-prefix", default="")
    parser.add_argument("--remote", required=True)
    parser.add_argument("--mirror-name", required=True)
    parser.add_argument("--mirrors", default="", help="KNLP_FORK_MIRRORS value")
    parser.add_argument(
        "--mirror", action="append", default=[], help="the fork's own mirror URL (repeatable)"
    )
    parser.add_argument("--submodule", action="append", default=[], help="path=commit=url")
    parser.add_argument("--archive-sha256", default="")
    parser.add_argument("--work", required=True)
    parser.add_argument("--out-tar", required=True)
    parser.add_argument("--info", required=True)
    parser.add_argument("--keep-work", action="store_true")
    args = parser.parse_args(argv)
    submodules = []
    for spec in args.submodule:
        parts = spec.split("=", 2)
        if len(parts) != 3:
            parser.error(f"--submodule {spec!r}: expected path=commit=url")
        submodules.append(tuple(parts))
    try:
        info = fetch_fork(
            args.name,
            args.commit,
            args.remote,
            args.mirror_name,
            parse_mirror_roots(args.mirrors),
            args.work,
            args.out_tar,
            submodules,
            args.archive_sha256,
            args.commit_prefix,
            log=lambda msg: print(msg, file=sys.stderr),
            mirrors=args.mirror,
        )
    except FetchError as err:
        print(f"knlp: {err}", file=sys.stderr)
        return 1
    finally:
        if not args.keep_work:
            shutil.rmtree(args.work, ignore_errors=True)
    # fork_info.json is an input of the wheel actions, so it holds only what
    # the lock determines; which URL served the commit goes to fetch_log.json.
    served = {"served_by": info.pop("served_by")}
    served["submodules"] = {p: s.pop("served_by") for p, s in info["submodules"].items()}
    Path(args.info).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    Path(args.info).with_name("fetch_log.json").write_text(json.dumps(served, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
