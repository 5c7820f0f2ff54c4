"""Provenance for a measurement: the manifest.json every result directory carries.

A result directory (what `//paper:import_results` copies into paper/data/) holds
its JSON/CSV files and one `manifest.json` saying how they were made: the
command, the git commit and whether the measuring sources were clean at that
commit, the machine, and the library versions. The paper's appendix prints it.
Writes are atomic (a temporary file renamed into place), so an interrupted run
never leaves a half-written result behind.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REQUIRED = ("name", "command", "git_commit", "machine", "versions", "created_utc")


def _git(args, cwd):
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def workspace_dir():
    """The source tree: `bazel run` names it; a plain python run uses the cwd."""
    return Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd()))


def git_state(sources):
    """(commit, sources_clean): HEAD, and whether `sources` match it exactly."""
    root = workspace_dir()
    commit = _git(["rev-parse", "HEAD"], root) or "unknown"
    status = _git(["status", "--porcelain", "--", *sources], root)
    return commit, (status == "")


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine():
    """The hardware, without the host name: what a reader needs to compare."""
    return {
        "arch": platform.machine(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpu": "none",
        "os": platform.platform(terse=True),
    }


def versions(modules):
    found = {"python": platform.python_version()}
    for name in modules:
        mod = sys.modules.get(name) or __import__(name)
        found[name] = getattr(mod, "__version__", "unknown")
    return found


def write_json(path, obj):
    """Writes `obj` as sorted, indented JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_text(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_manifest(out_dir, name, target, sources, modules, extra=None):
    """Writes out_dir/manifest.json for a measurement named `name`, run as `target`."""
    commit, clean = git_state(sources)
    manifest = {
        "name": name,
        "command": " ".join(["bazel run", target, "--", *sys.argv[1:]]),
        "git_commit": commit,
        "sources": list(sources),
        "sources_clean": clean,
        "machine": machine(),
        "versions": versions(modules),
        "created_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
    }
    manifest.update(extra or {})
    write_json(Path(out_dir) / "manifest.json", manifest)
    return manifest
