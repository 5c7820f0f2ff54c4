"""Opening a run's result directory: a new run, or the same run resumed.

The default run id is `<profile>-<hash of the resolved config>`: the same
command lands in the same directory and resumes there, and a changed setting
(say --iters) starts a new run instead of mixing two configurations. A
resumed run's manifest gains one entry per invocation.
"""

from __future__ import annotations

import os

from experiments.options import RunOptions
from experiments.results import (
    RunDir,
    build_manifest,
    config_hash,
    git_state,
    read_json,
    run_target,
    utc_now,
    workspace_dir,
    write_manifest,
)


class ConfigMismatch(Exception):
    """The run directory was made with another configuration."""


def run_dir(experiment: str, opts: RunOptions, config: dict) -> RunDir:
    """The run's directory under --results-dir (default: <workspace>/results)."""
    run_id = opts.run_id or f"{opts.profile.name}-{config_hash(config)[:8]}"
    root = opts.results_dir or os.path.join(workspace_dir(), "results")
    rerun = (
        f"bazel run {run_target(experiment)} -- --profile {opts.profile.name} "
        f"--run-id {run_id} --steps {{step}}"
    )
    return RunDir(os.path.join(root, experiment, run_id), rerun_command=rerun)


def record_invocation(run: RunDir, experiment, config, train_meta, device, world, steps, log):
    """Writes manifest.json for a new run, or appends this invocation to a resumed one."""
    mpath = run.path("manifest.json")
    run_id = os.path.basename(run.root)
    existing = read_json(mpath)
    if existing is None:
        m = build_manifest(
            experiment, run_id, run_target(experiment), config, train_meta, device, world
        )
        m["invocations"] = [{"time": m["created_utc"], "git": m["git"], "steps": steps}]
        write_manifest(run, m)
        return
    if existing.get("config_sha256") != config_hash(config):
        raise ConfigMismatch(f"{mpath} was made with another configuration; use another --run-id")
    git = git_state()
    if git.get("commit") != existing.get("git", {}).get("commit"):
        log(
            f"note: resuming a run started at commit {existing['git'].get('commit')} "
            f"from commit {git.get('commit')}; manifest.json records both"
        )
    existing.setdefault("invocations", []).append(
        {
            "time": utc_now(),
            "git": git,
            "steps": steps,
        }
    )
    write_manifest(run, existing)
