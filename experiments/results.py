"""The run record: manifests, atomic files, fsynced JSONL, DONE markers, summaries.

Every run target writes its results through this module, so every run directory
has the same manifest (what ran where: commit, lock, machine, command) and the
same guarantees against a kill. Layout of one run (`results/<experiment>/<run_id>/`):

  manifest.json          what ran where (build_manifest; fields in REQUIRED_FIELDS)
  steps/<step>/metrics.jsonl   the canonical per-iteration record of a step
  steps/<step>/DONE      written last, holding the step's final result
  steps/<step>/FAILED    the reason a step failed (NaN loss, OOM, ...)
  steps/<step>/ckpt.pt   latest checkpoint of an unfinished step
  logs/<step>.log        the step's text log
  plots/*.png            300 DPI figures
  summary.md             the results table
  summary.json           the same, machine-readable (experiments/summary.py)
  val_curves.csv         every evaluation of every run (trainer-based targets)

Every whole file is written to a temporary name in the same directory, fsynced
and moved into place with os.replace, so a reader sees the old file or the new
one, never half of one. JSONL lines are appended, flushed and fsynced one at a
time; a line torn by a kill is dropped on read and repaired before the next
append, so a resumed step never writes after a broken line.

DONE also records the sha256 and line count of the step's metrics.jsonl; a
step whose file no longer matches is damaged, and reading its result raises
ResultsError, as do corrupt JSON and a write that fails for lack of space or
permission. Its message is one line that names the file (and the step, with
the command that reruns it); `exit_on_results_error` turns it into exit 2.
"""

from __future__ import annotations

import csv
import datetime as _dt
import errno
import hashlib
import io
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable


class ResultsError(Exception):
    """A result file that is damaged or cannot be written; the message says which."""


# Write failures the user can fix (space, quota, permissions): one line, not a traceback.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def _write_failed(path: str, e: OSError) -> ResultsError:
    return ResultsError(
        f"cannot write {path}: {e.strerror}. Nothing already written was lost (a file being "
        "replaced keeps its old content); free space or fix permissions, then run the same "
        "command again: finished steps are kept"
    )


def exit_on_results_error(main: Callable[[], int]) -> int:
    """Runs `main`; a ResultsError becomes one line on stderr and exit status 2."""
    try:
        return main()
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def file_record(path: str) -> dict:
    """sha256 and line count of a file, as DONE records them."""
    digest, lines = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            lines += block.count(b"\n")
    return {"sha256": digest.hexdigest(), "lines": lines}


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, write: Callable) -> None:
    """Calls `write(binary file)` on a temporary file next to `path`, fsyncs it and
    renames it into place: a reader sees the old file or the new one, never half.

    For writers that stream (torch.save, savefig); the temporary name ends in
    `.tmp`, which RunDir.remove_stale_temps deletes after a kill.
    """
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in _WRITE_ERRNOS:
            raise _write_failed(path, e) from None
        raise
    _fsync_dir(d)


def atomic_write_bytes(path: str, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(o)
    return str(o)


def dumps(obj) -> str:
    """JSON with NaN/inf written as null, so every reader can parse it."""

    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        if o is None or isinstance(o, str | int | float):
            return o
        # Arrays, tensors, dataclasses: converted first, so a NaN inside one is cleaned too.
        return clean(_json_default(o))

    return json.dumps(clean(obj), sort_keys=True)


def atomic_write_json(path: str, obj) -> None:
    text = json.dumps(json.loads(dumps(obj)), indent=1, sort_keys=True) + "\n"
    atomic_write_text(path, text)


def write_csv(path: str, fieldnames: Iterable[str], rows: Iterable[dict]) -> None:
    """A CSV with a header, columns in `fieldnames` order, newline line ends; atomic.

    A key of a row that is not a column raises ValueError; a missing one is empty.
    Floats are written with full precision (repr), None as an empty cell.
    """
    fieldnames = list(fieldnames)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def read_json(path: str, default=None):
    if not os.path.exists(path):
        return default
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" at line {e.lineno} column {e.colno}" if hasattr(e, "lineno") else ""
        raise ResultsError(
            f"{path}: corrupt JSON{where}; restore it, or delete it and rerun to write it again"
        ) from None


def read_jsonl(path: str) -> list[dict]:
    """Every complete record; a torn last line (a kill mid-write) is skipped."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    records = []
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # the unterminated last line
                break
            raise ResultsError(f"{path}:{i + 1}: corrupt JSONL line (not the last one)") from None
    return records


def repair_jsonl(path: str, keep=None) -> list[dict]:
    """Rewrites `path` atomically with only its complete records (those `keep` accepts)."""
    records = read_jsonl(path)
    if keep is not None:
        records = [r for r in records if keep(r)]
    if os.path.exists(path):
        atomic_write_text(path, "".join(dumps(r) + "\n" for r in records))
    return records


class JsonlWriter:
    """Appends one JSON record per line, flushed and fsynced per record."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if os.path.exists(path):
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        repair_jsonl(path)
        self.path = path
        try:
            self._f = open(path, "a", encoding="utf-8")
        except OSError as e:
            if e.errno in _WRITE_ERRNOS:
                raise _write_failed(path, e) from None
            raise

    def write(self, record: dict) -> None:
        """Appends one line; a failed write leaves at most a torn last line, dropped on read."""
        try:
            self._f.write(dumps(record) + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as e:
            if e.errno in _WRITE_ERRNOS:
                raise _write_failed(self.path, e) from None
            raise

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RunDir:
    """One run's result directory and its per-step DONE/FAILED state.

    `rerun_command`, with `{step}` in it, is the command that reruns one step;
    error messages about a damaged step quote it.
    """

    def __init__(self, root: str, rerun_command: str | None = None):
        self.root = os.path.abspath(root)
        self.rerun_command = rerun_command
        for sub in ("steps", "plots", "logs"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def remove_stale_temps(self) -> list[str]:
        """Deletes the temporary files a kill left mid-write (`*.tmp`); returns their paths.

        Every writer here writes a temporary file and renames it into place, so a
        `.tmp` file is never data: the file it was replacing is intact. Called
        once when a run starts, before anything writes.
        """
        removed = []
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                if name.endswith(".tmp"):
                    os.unlink(os.path.join(dirpath, name))
                    removed.append(os.path.join(dirpath, name))
        return removed

    def step_dir(self, step: str) -> str:
        d = self.path("steps", step)
        os.makedirs(d, exist_ok=True)
        return d

    def metrics_path(self, step: str) -> str:
        return os.path.join(self.step_dir(step), "metrics.jsonl")

    def checkpoint_path(self, step: str) -> str:
        return os.path.join(self.step_dir(step), "ckpt.pt")

    def log_path(self, step: str) -> str:
        return self.path("logs", f"{step}.log")

    def is_done(self, step: str) -> bool:
        return os.path.exists(self.path("steps", step, "DONE"))

    def done_result(self, step: str) -> dict | None:
        """DONE's result, after checking the files it records; ResultsError if damaged."""
        done = read_json(self.path("steps", step, "DONE"))
        if done is None:
            return None
        for name, want in done.get("integrity", {}).items():
            path = self.path("steps", step, name)
            got = file_record(path) if os.path.exists(path) else None
            if got != want:
                found = f"{got['lines']} lines, sha256 {got['sha256'][:12]}" if got else "missing"
                raise ResultsError(
                    f"step {step} is damaged: {path} is {found}, but DONE recorded "
                    f"{want['lines']} lines, sha256 {want['sha256'][:12]}. Rerun the step: "
                    f"{self.rerun_hint(step)}"
                )
        return {k: v for k, v in done.items() if k != "integrity"}

    def rerun_hint(self, step: str) -> str:
        clear = f"rm -r {self.path('steps', step)}"
        command = (self.rerun_command or "the same command with --steps {step}").format(step=step)
        return f"{clear} && {command}"

    def failure(self, step: str) -> dict | None:
        return read_json(self.path("steps", step, "FAILED"))

    def mark_done(self, step: str, result: dict) -> None:
        """DONE last: DONE means everything else is in place.

        DONE holds the result and, under "integrity", the sha256 and line count of
        the step's metrics.jsonl, which done_result checks on every read.
        """
        metrics = self.path("steps", step, "metrics.jsonl")
        files = {"metrics.jsonl": file_record(metrics)} if os.path.exists(metrics) else {}
        failed = self.path("steps", step, "FAILED")
        if os.path.exists(failed):
            os.unlink(failed)
        ckpt = self.checkpoint_path(step)
        if os.path.exists(ckpt):
            os.unlink(ckpt)
        atomic_write_json(self.path("steps", step, "DONE"), {**result, "integrity": files})

    def mark_failed(self, step: str, reason: str, detail: dict | None = None) -> None:
        atomic_write_json(self.path("steps", step, "FAILED"), {"reason": reason, **(detail or {})})


# -- the manifest: what ran where ------------------------------------------

SCHEMA = 1

# Dotted paths every manifest holds (a null value counts: "unknown" is recorded).
REQUIRED_FIELDS: tuple[str, ...] = (
    "schema",
    "experiment",
    "run_id",
    "created_utc",
    "command",
    "git.commit",
    "git.dirty",
    "versions.python",
    "versions.torch",
    "versions.lock_sha256",
    "machine.device",
    "machine.cpu",
    "machine.gpu",
)

# Fields that must agree before two runs may be compared (tools/verify_runs).
# Each is a dotted path into the manifest.
COMPARABLE_FIELDS = {
    "effective batch": "train.effective_batch_tokens",
    "iteration budget": "train.max_iters",
    "time budget": "train.time_budget_s",
    "torch.compile": "train.compile",
    "dataset": "train.dataset",
    "eval protocol": "train.eval_protocol",
    "precision": "train.dtype",
    "machine": "machine.gpu",
    "device count": "machine.world_size",
    "torch version": "versions.torch",
    "cuda version": "versions.cuda",
    "rocm version": "versions.rocm",
    "lock": "versions.lock_sha256",
    "commit": "git.commit",
    "dirty tree": "git.dirty",
}

_ABSENT = object()


def _lookup(manifest: dict, dotted: str):
    cur = manifest
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _ABSENT
        cur = cur[part]
    return cur


def get_field(manifest: dict, dotted: str):
    """The value at a dotted path ("git.commit"), or None where it is absent."""
    value = _lookup(manifest, dotted)
    return None if value is _ABSENT else value


def missing_fields(manifest: dict) -> list[str]:
    """The REQUIRED_FIELDS a manifest lacks (absent keys; a null value is present)."""
    return [f for f in REQUIRED_FIELDS if _lookup(manifest, f) is _ABSENT]


def workspace_dir() -> str:
    """The user's checkout: BUILD_WORKSPACE_DIRECTORY under `bazel run`, else the cwd."""
    return os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.getcwd()


def git_state(root: str | None = None) -> dict:
    """{"commit", "dirty"} of the checkout at `root`; None where there is no git
    checkout, with "error" saying so.

    Dirty means a tracked file differs from HEAD or an untracked file git does
    not ignore exists: Bazel's globs build such files into a run as well.
    """
    root = root or workspace_dir()
    try:
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=normal"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "error": f"no git checkout at {root}"}


def _runfile(relative: str) -> str | None:
    here = os.path.dirname(os.path.abspath(__file__))
    roots = [
        os.environ.get("RUNFILES_DIR"),
        os.environ.get("TEST_SRCDIR"),
        os.path.join(here, "..", ".."),
    ]
    for r in roots:
        if r:
            for p in (os.path.join(r, relative), os.path.join(r, "knlp", "external", relative)):
                if os.path.exists(p):
                    return p
    return None


def venv_info() -> dict:
    """@pip//:venv_info.json: the lock's hash and the accelerator the venv was built for."""
    path = _runfile("pip/venv_info.json")
    if not path:
        return {"lock_sha256": None, "note": "venv_info.json not in runfiles (not run by Bazel)"}
    with open(path) as f:
        return json.load(f)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str, world_size: int = 1) -> dict:
    """The machine a run ran on; the host name is not recorded."""
    import torch

    info = {
        "device": device,
        "world_size": world_size,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": None,
        "gpu_memory_gb": None,
        "os": platform.platform(),
        "arch": platform.machine(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        info["gpu"] = props.name
        info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
    return info


def versions() -> dict:
    import numpy
    import torch

    vi = venv_info()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "rocm": getattr(torch.version, "hip", None),
        "numpy": numpy.__version__,
        "lock_sha256": vi.get("lock_sha256"),
        "accelerator": vi.get("accelerator"),
    }


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def utc_now() -> str:
    """The current UTC time as the manifest writes it: 2026-12-03T09:30:00Z."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_target(experiment: str) -> str:
    """The Bazel label of an experiment's run target: //experiments:<experiment>."""
    return f"//experiments:{experiment}"


def command_line(target: str, argv: list[str] | None = None) -> str:
    """The `bazel run` command that reruns this process, shell-quoted."""
    argv = sys.argv[1:] if argv is None else argv
    return shlex.join(["bazel", "run", target] + (["--", *argv] if argv else []))


def build_manifest(
    experiment: str,
    run_id: str,
    target: str,
    config: dict,
    train: dict,
    device: str,
    world_size: int = 1,
    argv: list[str] | None = None,
) -> dict:
    """The manifest of a run of `target` (a Bazel label). `train` holds the comparable
    training settings (COMPARABLE_FIELDS); `config` the resolved configuration;
    `argv` the arguments the target got (default sys.argv[1:]).

    Nothing from the environment is copied in, so no secret (WANDB_API_KEY,
    HF_TOKEN, ...) can reach it.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    return {
        "schema": SCHEMA,
        "experiment": experiment,
        "run_id": run_id,
        "created_utc": utc_now(),
        "command": command_line(target, argv),
        "argv": argv,
        "git": git_state(),
        "versions": versions(),
        "machine": machine(device, world_size),
        "train": train,
        "config": config,
        "config_sha256": config_hash(config),
    }


def write_manifest(run: RunDir | str, manifest: dict) -> None:
    """Writes manifest.json atomically into a RunDir (or a run directory's path)."""
    root = run.root if isinstance(run, RunDir) else run
    atomic_write_json(os.path.join(root, "manifest.json"), manifest)
