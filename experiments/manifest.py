"""What a run needs to be reproduced and compared: code, libraries, hardware, config.

`build_manifest()` gathers the git commit and dirty flag of the user's
checkout, the pinned lock's hash (from @pip//:venv_info.json), the torch,
CUDA and ROCm versions, the GPU, and the caller's resolved config. The
fields that tools/verify_runs compares are listed in COMPARABLE_FIELDS.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys

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
    "hardware": "hardware.gpu",
    "device count": "hardware.world_size",
    "torch version": "versions.torch",
    "cuda version": "versions.cuda",
    "rocm version": "versions.rocm",
    "lock": "versions.lock_sha256",
    "commit": "git.commit",
    "dirty tree": "git.dirty",
}


def workspace_dir() -> str:
    """The user's checkout: BUILD_WORKSPACE_DIRECTORY under `bazel run`, else the cwd."""
    return os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.getcwd()


def git_state(root: str | None = None) -> dict:
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
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
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


def hardware(device: str, world_size: int = 1) -> dict:
    import torch

    info = {
        "device": device,
        "world_size": world_size,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": None,
        "gpu_memory_gb": None,
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


def build_manifest(
    experiment: str, run_id: str, config: dict, train: dict, device: str, world_size: int = 1
) -> dict:
    """The manifest of a run. `train` holds the comparable training settings."""
    return {
        "experiment": experiment,
        "run_id": run_id,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "git": git_state(),
        "versions": versions(),
        "hardware": hardware(device, world_size),
        "train": train,
        "config": config,
        "config_sha256": config_hash(config),
    }


def get_field(manifest: dict, dotted: str):
    cur = manifest
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur
