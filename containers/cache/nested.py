"""Run Bazel on another workspace and read what the remote cache did for it.

Shared by the integration test (cache_test.py) and the benchmark (bench.py).
Each run is `bazel --batch` with its own `--output_user_root`, so no server
outlives it, and a clean environment, so nothing from the calling test or
shell (TEST_TMPDIR, BUILD_WORKSPACE_DIRECTORY, a user's HOME) leaks in.
"""

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BAZEL = "/usr/bin/bazel"
PROCESSES_RE = re.compile(r"INFO: (\d+) process(?:es)?: (.*)\.")
TEST_LINE_RE = re.compile(r"^(//\S+)\s+(\(cached\) )?(PASSED|FAILED|FLAKY|TIMEOUT|NO STATUS)", re.M)


class NestedBazelError(Exception):
    """A nested Bazel command failed; the message carries the tail of its output."""


def find_bazel():
    for candidate in (BAZEL, shutil.which("bazel")):
        if candidate and Path(candidate).exists():
            return candidate
    raise NestedBazelError("bazel not found; run ./setup.sh (it installs bazel-bootstrap)")


@dataclass
class Run:
    """One nested Bazel command: its output, time, and the spawns it logged."""

    args: list
    returncode: int
    output: str
    seconds: float
    spawns: list = field(default_factory=list)

    @property
    def cacheable(self):
        """Spawns the remote cache may serve (remotable and cacheable)."""
        return [s for s in self.spawns if s.get("remotable") and s.get("cacheable")]

    @property
    def hits(self):
        return [s for s in self.cacheable if s.get("remoteCacheHit")]

    @property
    def misses(self):
        return [s for s in self.cacheable if not s.get("remoteCacheHit")]

    @property
    def hit_ratio(self):
        return len(self.hits) / len(self.cacheable) if self.cacheable else 0.0

    def processes_line(self):
        """Bazel's own summary, e.g. '5 remote cache hit, 4 internal'."""
        found = PROCESSES_RE.findall(self.output)
        return found[-1][1] if found else ""

    def tests(self):
        """{label: "(cached) PASSED" | "PASSED" | ...} from the test summary."""
        return {m[0]: (m[1] + m[2]).strip() for m in TEST_LINE_RE.findall(self.output)}


def parse_execution_log(path):
    """The spawns of a `--execution_log_json_file` (concatenated JSON objects)."""
    text = Path(path).read_text() if Path(path).exists() else ""
    decoder = json.JSONDecoder()
    spawns, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return spawns
        obj, pos = decoder.raw_decode(text, pos)
        spawns.append(obj)


def copy_checkout(repo, dest):
    """The files of checkout `repo` (tracked and untracked, not ignored) at `dest`, committed
    as a git repository of their own; returns `dest`."""
    files = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for f in filter(None, files):
        src = Path(repo) / f.decode()
        if src.is_file():
            (Path(dest) / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, Path(dest) / f.decode())
    git = ["git", "-C", str(dest), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "copy"], check=True)
    return Path(dest)


def remove_output_root(path):
    """Deletes a nested Bazel's output root, whose trees Bazel makes read-only."""
    path = Path(path)
    if not path.exists():
        return
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            p = Path(dirpath) / d
            if not p.is_symlink():
                p.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


def bazel_env(home):
    """A minimal environment for a nested Bazel client."""
    Path(home).mkdir(parents=True, exist_ok=True)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    for keep in ("USER", "LOGNAME"):
        if keep in os.environ:
            env[keep] = os.environ[keep]
    env.setdefault("USER", "knlp")
    return env


def run_bazel(workspace, user_root, command, args, log=None, check=True, timeout=900):
    """`bazel --batch --output_user_root=USER_ROOT COMMAND ARGS` in WORKSPACE.

    With `log`, the spawns go to that execution log and come back in Run.spawns.
    """
    argv = [
        find_bazel(),
        "--batch",
        "--nohome_rc",
        f"--output_user_root={user_root}",
        command,
    ] + list(args)
    if log is not None:
        Path(log).unlink(missing_ok=True)
        argv.append(f"--execution_log_json_file={log}")
    start = time.monotonic()
    proc = subprocess.run(
        argv,
        cwd=workspace,
        env=bazel_env(Path(user_root) / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    run = Run(argv[4:], proc.returncode, proc.stdout, time.monotonic() - start)
    if log is not None:
        run.spawns = parse_execution_log(log)
    if check and proc.returncode != 0:
        raise NestedBazelError(
            f"`bazel {' '.join(run.args)}` in {workspace} exited {proc.returncode}:\n"
            + proc.stdout[-4000:]
        )
    return run
