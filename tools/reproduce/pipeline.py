"""The stage runner: run directories, atomic stage results, resume.

A run lives in `<results>/<run_id>/`:

    manifest.json            what ran, where, with which pins; updated after every stage
                             (experiments/record.py's Manifest, whose `runs` is empty:
                             no stage is a Bazel run action; plus the stage set, the
                             fork pins, the gates and every stage's status)
    report.md, report.json   written by the report stage
    stages/<stage>/          one directory per stage that has run:
        DONE                 present only when the stage completed
        status.json          ok | skipped | failed, with a structured reason
        metrics.jsonl        one JSON record per line
        stdout.log, stderr.log

A stage is executed in a staging directory (`stages/.<stage>.<pid>/`) that is
renamed into place when the stage ends, so a stage directory is never half
written and a killed stage leaves the previous result intact. A rerun with the
same run id starts at the first stage without DONE and runs every stage from
there on. A stage that cannot run on this machine raises `Skip` with a code and
a detail; the skip is recorded (status.json, metrics.jsonl, the report) and the
pipeline goes on, so the report always says why a gate has no data. A stage
that fails stops the pipeline.
"""

import io
import json
import os
import shutil
import subprocess
import traceback
from pathlib import Path

from experiments import provenance
from experiments.record import Manifest
from experiments.results import (
    atomic_write_json,
    command_line,
    read_json,
    read_jsonl,
    utc_now,
    workspace_dir,
)

STAGES = ("doctor", "fetch", "build", "run", "report", "upload")


def external_runfile(repo, name):
    """A file of external repository `repo` in this binary's runfiles, or None."""
    roots = [Path.cwd().parent, Path.cwd() / "external"]
    if os.environ.get("RUNFILES_DIR"):
        roots.insert(0, Path(os.environ["RUNFILES_DIR"]))
    for root in roots:
        if (root / repo / name).exists():
            return root / repo / name
    return None


def git_state():
    """The git state of the user's checkout (the workspace `bazel run` started in)."""
    return provenance.git_state(workspace_dir())


class Skip(Exception):
    """This stage cannot run here; `code` is stable for tools, `detail` is for people."""

    def __init__(self, code, detail, **data):
        super().__init__(f"{code}: {detail}")
        self.reason = {"code": code, "detail": detail, **data}


class PipelineError(Exception):
    pass


class StageContext:
    """What a stage function gets: its directory, the run, and places to write."""

    def __init__(self, pipeline, stage, staging):
        self.pipeline = pipeline
        self.stage = stage
        self.dir = staging
        self.run_dir = pipeline.run_dir
        self.stage_set = pipeline.stage_set
        self.stage_set_spec = pipeline.stage_set_spec
        self.env = pipeline.env
        self.records = []
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()

    def metric(self, **record):
        self.records.append({"stage": self.stage, "time": utc_now(), **record})

    def log(self, message):
        print(message, file=self.stdout, flush=True)

    def done(self, stage):
        return self.pipeline.is_done(stage)

    def require_done(self, *stages):
        for stage in stages:
            if not self.done(stage):
                status = self.pipeline.status(stage)
                raise Skip(
                    "upstream_not_done",
                    f"stage {stage} has not completed (its status: {status.get('status')}"
                    + (f", {status['reason']['code']}" if status.get("reason") else "")
                    + ")",
                    stage=stage,
                )

    def stage_metrics(self, stage):
        return read_jsonl(self.run_dir / "stages" / stage / "metrics.jsonl")

    def run(self, cmd, cwd=None, env=None, check=True):
        """Runs a command, appending its output to this stage's logs."""
        self.log(f"$ {' '.join(map(str, cmd))}")
        proc = subprocess.run(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env if env is not None else self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        self.stdout.write(proc.stdout)
        self.stderr.write(proc.stderr)
        if check and proc.returncode != 0:
            raise PipelineError(f"{cmd[0]} exited {proc.returncode}; see stderr.log")
        return proc


class Pipeline:
    """Runs `stages` (name -> function(ctx)) of `stage_set` in the run directory."""

    def __init__(
        self, stage_set, stage_set_spec, run_dir, stage_functions, env=None, facts=None, argv=None
    ):
        missing = [s for s in STAGES if s not in stage_functions]
        if missing:
            raise PipelineError(f"no implementation for stages {missing}")
        self.stage_set = stage_set
        self.stage_set_spec = stage_set_spec
        self.run_dir = Path(run_dir)
        self.functions = stage_functions
        self.env = dict(os.environ if env is None else env)
        self.facts = facts or {}
        self.argv = argv  # the command line the manifest records (default: sys.argv)

    @property
    def manifest_path(self):
        return self.run_dir / "manifest.json"

    def stage_dir(self, stage):
        return self.run_dir / "stages" / stage

    def is_done(self, stage):
        return (self.stage_dir(stage) / "DONE").exists()

    def status(self, stage):
        path = self.stage_dir(stage) / "status.json"
        return json.loads(path.read_text()) if path.exists() else {"status": "not_run"}

    def first_pending(self):
        for stage in STAGES:
            if not self.is_done(stage):
                return stage
        return None

    def load_manifest(self):
        manifest = read_json(str(self.manifest_path))
        if manifest is not None:
            if manifest.get("stage_set") != self.stage_set:
                raise PipelineError(
                    f"run {self.run_dir.name} is a {manifest.get('stage_set')!r} run; "
                    f"it cannot be resumed as {self.stage_set!r} (use a new --run-id)"
                )
            return manifest
        return dict(self.new_manifest().to_dict(), stage_set=self.stage_set, stages={})

    def new_manifest(self):
        """The record.Manifest of a new run of this stage set: commit, command, machine and
        versions; `runs` is empty, as no stage is a Bazel run action with an inputs digest."""
        import torch

        venv = external_runfile("pip", "venv_info.json")
        return Manifest(
            experiment=self.stage_set,
            run_id=self.run_dir.name,
            created_utc=utc_now(),
            command=command_line(f"//tools/reproduce:{self.stage_set}", [], self.argv),
            git=git_state(),
            versions=provenance.versions(str(venv) if venv else None),
            machine=provenance.machine("cuda" if torch.cuda.is_available() else "cpu"),
            train={},
            config=self.stage_set_spec,
            runs={},
        )

    def save_manifest(self, manifest):
        manifest["updated_at"] = utc_now()
        manifest["stages"] = {s: self.status(s) for s in STAGES}
        atomic_write_json(str(self.manifest_path), manifest)

    def run(self, stop_after=None):
        """Runs from the first stage without DONE; returns {stage: status}."""
        (self.run_dir / "stages").mkdir(parents=True, exist_ok=True)
        manifest = self.load_manifest()
        manifest.update(self.facts)
        start = self.first_pending()
        manifest["invocations"].append({"at": utc_now(), "resumed_at": start, "git": git_state()})
        self.save_manifest(manifest)
        results = {}
        if start is None:
            return results
        for stage in STAGES[STAGES.index(start) :]:
            status = self.execute(stage)
            results[stage] = status
            self.save_manifest(manifest)
            if status["status"] == "failed" or stage == stop_after:
                break
        return results

    def execute(self, stage):
        staging = self.run_dir / "stages" / f".{stage}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        ctx = StageContext(self, stage, staging)
        started = utc_now()
        try:
            self.functions[stage](ctx)
            status = {"status": "ok"}
        except Skip as skip:
            status = {"status": "skipped", "reason": skip.reason}
            ctx.log(f"skipped: {skip.reason['code']}: {skip.reason['detail']}")
        except Exception as err:  # noqa: BLE001 - any failure is recorded, then reported
            status = {"status": "failed", "reason": {"code": "error", "detail": str(err)}}
            ctx.stderr.write(traceback.format_exc())
        status.update(stage=stage, started_at=started, finished_at=utc_now())
        records = ctx.records + [
            {"stage": stage, "time": utc_now(), "event": "stage_end", **status}
        ]
        (staging / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (staging / "stdout.log").write_text(ctx.stdout.getvalue())
        (staging / "stderr.log").write_text(ctx.stderr.getvalue())
        (staging / "status.json").write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")
        if status["status"] == "ok":
            (staging / "DONE").write_text(status["finished_at"] + "\n")
        final = self.stage_dir(stage)
        old = None
        if final.exists():
            old = final.with_name(f".{stage}.old.{os.getpid()}")
            os.replace(final, old)
        os.replace(staging, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return status
