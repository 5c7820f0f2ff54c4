"""Where a run was made: the git state of the checkout, the machine, the library versions.

A run's action records its machine and versions in its result
(experiments/run_step.py): the machine that trained it, which may not be the
one that installs it when the result came from the shared cache. The
installer records the checkout's git state (experiments/install.py). Nothing
from the environment is copied in and no host name is recorded, so no secret
(WANDB_API_KEY, HF_TOKEN, ...) can reach a record. torch is imported only by
`machine` and `versions`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess


def git_state(root: str) -> dict:
    """{"commit", "dirty"} of the checkout at `root`; None where there is no git
    checkout, with "error" saying so.

    Dirty means a tracked file differs from HEAD or an untracked file git does
    not ignore exists: Bazel's globs build such files into a run as well.
    """
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


def venv_info(path: str | None) -> dict:
    """@pip//:venv_info.json: the lock's hash and the accelerator the venv was built for."""
    if not path or not os.path.exists(path):
        return {"lock_sha256": None, "note": "venv_info.json not given (not run by Bazel)"}
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


def versions(venv_info_path: str | None) -> dict:
    import numpy
    import torch

    vi = venv_info(venv_info_path)
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "rocm": getattr(torch.version, "hip", None),
        "numpy": numpy.__version__,
        "lock_sha256": vi.get("lock_sha256"),
        "accelerator": vi.get("accelerator"),
    }
