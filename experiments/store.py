"""The checkpoint store: where a run's action keeps its work until its outputs exist.

Bazel deletes an action's outputs before it runs the action again, so a run
killed mid-training (Ctrl-C, SIGKILL, an OOM, a lost machine) would lose
everything it wrote under Bazel's output tree. A run therefore trains in a
directory of this per-user store, outside Bazel's output tree:

    <root>/<inputs sha256>/ckpt.pt        the latest checkpoint (experiments/trainer.py)
    <root>/<inputs sha256>/metrics.jsonl  the record so far
    <root>/<inputs sha256>/log.txt        the run's log, appended across resumes
    <root>/<inputs sha256>/lock           held while a process trains it

keyed by the digest of the action's inputs (experiments/digest.py), so the
same action run again resumes there and an action with any other input never
sees it. The directory is removed once the action's outputs are written.
The root is `$XDG_CACHE_HOME/knlp/runs` or `~/.cache/knlp/runs`, mode 0700:
checkpoints are pickles, so the store refuses a root another user could write.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import stat
import time
from pathlib import Path


class StoreError(RuntimeError):
    """The store cannot be trusted or written; the message says what to do."""


def default_root() -> Path:
    """$XDG_CACHE_HOME/knlp/runs, else ~/.cache/knlp/runs (the home from the user database:
    Bazel's actions run without HOME)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg.startswith("/") else Path(pwd.getpwuid(os.geteuid()).pw_dir) / ".cache"
    return base / "knlp" / "runs"


def _check_private(path: Path) -> None:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path} is not a directory; remove it so the store can be made")
    if st.st_uid != os.geteuid():
        raise StoreError(
            f"{path} is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}): its "
            f"checkpoints could hold someone else's code. Remove it (rm -rf {path})"
        )
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


class RunStore:
    """One run's directory in the store, locked while this process holds it.

    Under torchrun every rank opens the directory and rank 0 alone (`lock`) holds
    the lock and writes.
    """

    def __init__(self, digest: str, root: str | Path | None = None, wait_log=None, lock=True):
        self.root = Path(root) if root else default_root()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_private(self.root)
        self.dir = self.root / digest
        self.dir.mkdir(mode=0o700, exist_ok=True)
        _check_private(self.dir)
        self._lock = open(self.dir / "lock", "a")  # noqa: SIM115 - held until release()
        if not lock:
            return
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait_log:
                wait_log(f"{self.dir} is held by another process training the same run; waiting")
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def path(self, name: str) -> str:
        return str(self.dir / name)

    @property
    def checkpoint(self) -> str:
        return self.path("ckpt.pt")

    @property
    def metrics(self) -> str:
        return self.path("metrics.jsonl")

    @property
    def log(self) -> str:
        return self.path("log.txt")

    def remove(self) -> None:
        """Deletes the run's directory: its outputs are written."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self.release()

    def release(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


class DeviceLock:
    """Exclusive use of GPUs 0..n-1 on this machine: one run at a time per GPU.

    Bazel runs as many actions side by side as the machine has cores; a GPU
    profile's run takes every GPU it trains on, so the others wait here.
    """

    def __init__(self, gpus: int, root: str | Path | None = None, wait_log=None):
        root = Path(root) if root else default_root()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._files = []
        for i in range(gpus):
            f = open(root / f"gpu-{i}.lock", "a")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if wait_log:
                    wait_log(f"GPU {i} is training another run; waiting for it")
                t0 = time.monotonic()
                fcntl.flock(f, fcntl.LOCK_EX)
                if wait_log:
                    wait_log(f"GPU {i} free after {time.monotonic() - t0:.0f} s")
            self._files.append(f)

    def release(self) -> None:
        for f in self._files:
            if not f.closed:
                fcntl.flock(f, fcntl.LOCK_UN)
                f.close()
