"""knlp doctor: what this machine has, and what is missing for which targets.

    bazel run //tools:doctor

It reads what Bazel itself resolved (the venv in @pip, the host tools found by
@local_toolchains) and looks for GPUs directly. Exit status 1 means a tool that
`bazel test //...` needs on a CPU machine is missing; GPU absence is reported
but is not an error.
"""

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

# tool -> (what needs it, needed by the CPU gate `bazel test //...`)
NEEDS = {
    "nvcc": ("CUDA kernel targets in //kernels and the fork wheels in //third_party/forks", True),
    "hipcc": ("HIP kernel targets in //kernels", True),
    "latexmk": ("//paper:pdf", True),
    "pdflatex": ("//paper:pdf", True),
    "bibtex": ("//paper:pdf", True),
    "pdftotext": ("the PDF checks in //paper", True),
    "buildah": ("container image builds in //containers", True),
    "nginx": ("the shared-cache integration test in //containers/cache", True),
}
SETUP_HINT = "run ./setup.sh, then `bazel sync --configure` so Bazel looks again"
# Tools that ./setup.sh cannot install from Debian's archive, and where they come from.
HINTS = {
    "nvcc": (
        "install CUDA 13.0 from NVIDIA's Debian 12 repository (cuda-nvcc-13-0), "
        "then `bazel sync --configure`"
    ),
}


def external_runfile(repo, name):
    """A file of external repository `repo` in this binary's runfiles, or None.

    Bazel runs the binary in `<runfiles>/knlp`; external repositories sit
    beside it (and, with legacy runfiles, also under `external/`).
    """
    for candidate in (Path.cwd().parent / repo / name, Path.cwd() / "external" / repo / name):
        if candidate.exists():
            return candidate
    return None


def command_output(cmd):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout + proc.stderr).strip() if proc.returncode == 0 else None


def bazel_version():
    out = command_output(["bazel", "--version"])
    if out and "no_version" not in out:
        return out
    pkg = command_output(["dpkg-query", "-W", "-f=${Version}", "bazel-bootstrap"])
    return f"bazel-bootstrap {pkg} (Debian)" if pkg else (out or "not found")


def gpus():
    found = []
    smi = command_output(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    )
    if smi:
        found += [f"NVIDIA {line.strip()}" for line in smi.splitlines() if line.strip()]
    if shutil.which("rocminfo"):
        info = command_output(["rocminfo"]) or ""
        found += [
            f"AMD {line.split(':', 1)[1].strip()}"
            for line in info.splitlines()
            if line.strip().startswith("Name:") and "gfx" in line
        ]
    return found


def report(venv_info, toolchains, gpu_list, bazel):
    """Lines of the report and the number of problems that block the CPU gate."""
    try:
        os_name = platform.freedesktop_os_release()["PRETTY_NAME"]
    except (OSError, KeyError):
        os_name = platform.system()
    lines = [f"machine   {os_name}, {platform.machine()}", f"bazel     {bazel}"]
    if venv_info:
        lines.append(
            f"python    {venv_info['python_version']} ({venv_info['interpreter']}), "
            f"accelerator {venv_info['accelerator']}, lock {venv_info['lock']} "
            f"sha256 {venv_info['lock_sha256'][:12]}, venv {venv_info['venv']}"
        )
    else:
        lines.append("python    @pip//:venv_info.json not found (run under `bazel run`)")
    blocking = 0
    for tool, (needed_by, gate) in NEEDS.items():
        info = toolchains.get(tool, {"available": False})
        if info.get("available"):
            lines.append(f"{tool:<9} {info['version']}  [{info['path']}]")
        else:
            blocking += gate
            lines.append(f"{tool:<9} MISSING: needed by {needed_by}; {HINTS.get(tool, SETUP_HINT)}")
    if gpu_list:
        lines += [f"gpu       {g}" for g in gpu_list]
    else:
        lines.append("gpu       none: tests tagged gpu are skipped (run them with --config=gpu)")
    return lines, blocking


def load_json(path):
    return json.loads(path.read_text()) if path else None


def main():
    venv_info = load_json(external_runfile("pip", "venv_info.json"))
    toolchains = load_json(external_runfile("local_toolchains", "toolchains.json")) or {}
    lines, blocking = report(venv_info, toolchains, gpus(), bazel_version())
    print("\n".join(lines))
    if blocking:
        print(f"\n{blocking} tool(s) that `bazel test //...` needs are missing.")
    return 1 if blocking else 0


if __name__ == "__main__":
    sys.exit(main())
