"""Test fixtures of experiments/ (testonly): a run's spec, its record, a tiny experiment.

One copy of what the tests of the trainer, the kinds, the report, the
installer and the run actions share. It imports no torch, so the tests of the
record, the report, the tracker and the installer do not either; the tiny
models the trainer's tests train are in experiments/testing_models.py and
experiments/bigram.py.

  steps(experiment, profile)  an experiment's steps, as Bazel lists them from
                              experiments/experiments.bzl (//experiments:steps)
  run_spec, write_run_spec    the spec.json experiments/defs.bzl writes for one run
  profile_of(spec)            the Profile that run's action trains under
  write_inputs                an inputs.txt for experiments/run_step.py
  run_result, metrics_of      a run's record (experiments/record.py RunResult) and a
                              metrics.jsonl as the trainer writes it
  write_experiment            a tiny experiment: the runs' records and the
                              experiment.json the Report action and the installer read

    spec = write_run_spec(tmp_path / "spec.json", "gpt2_ratio_ablation", "8", iters=4)
    run_step.main(["--spec", ..., "--inputs", write_inputs(tmp_path / "inputs.txt", [...]),
                   "--out", ..., "--store", str(tmp_path / "store")])
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from experiments import profiles
from experiments.record import SCHEMA, RunResult, RunSpec
from experiments.results import JsonlWriter, atomic_write_json
from experiments.run_profile import Profile

__all__ = [
    "declared_steps",
    "find_step",
    "gate_runfiles",
    "metrics_of",
    "profile_of",
    "run_result",
    "run_spec",
    "steps",
    "write_experiment",
    "write_inputs",
    "write_run_spec",
]

HERE = Path(__file__).parent

# ---------------------------------------------------------------- a run's spec


def _built(path: str) -> Path:
    """A Bazel output of experiments/: in the test's runfiles, or under bazel-bin/."""
    import pytest

    for root in (Path(os.environ.get("TEST_SRCDIR", "/nonexistent")) / "knlp", HERE.parent):
        for candidate in (root / path, root / "bazel-bin" / path):
            if candidate.exists():
                return candidate
    pytest.skip(f"{path} is not built (bazel build //experiments:steps)")


def declared_steps() -> dict:
    """experiment -> profile -> its steps, as Bazel lists them (//experiments:steps)."""
    return json.loads(_built("experiments/steps.json").read_text())


def steps(experiment: str, profile: str = "cpu") -> list[dict]:
    """The steps of `experiment` on `profile`, as experiments/experiments.bzl lists them:
    name, aliases, label, kind, program, declaration, dataset, seeded."""
    declared = declared_steps()
    if experiment not in declared:
        raise ValueError(f"unknown experiment {experiment!r}; accepted: {', '.join(declared)}")
    return declared[experiment][profile]


def find_step(experiment: str, step: str, profile: str = "cpu") -> dict:
    """One step by its name or alias ("step08" or "8", "MLA", "lenet5-adamw-bitter7-70")."""
    all_steps = steps(experiment, profile)
    for s in all_steps:
        if step == s["name"] or step in s["aliases"]:
            return s
    names = ", ".join(s["name"] for s in all_steps)
    raise ValueError(f"{experiment} has no step {step!r}; accepted: {names}")


def run_spec(
    experiment: str,
    step: str,
    seed: int | None = 1337,
    profile: str = "cpu",
    iters: int | None = None,
    time: str | None = None,
    declaration: dict | None = None,
) -> dict:
    """The spec.json experiments/defs.bzl writes for one run of `step` (a measurement's
    run takes no seed). `declaration` replaces the step's, for a test that plants a
    defect in it."""
    s = find_step(experiment, step, profile)
    seed = seed if s["seeded"] else None
    return {
        "experiment": experiment,
        "step": s["name"],
        "run": s["name"] + (f"-s{seed}" if seed is not None else ""),
        "label": s["label"],
        "seed": seed,
        "kind": s["kind"],
        "declaration": s["declaration"] if declaration is None else declaration,
        "profile": profile,
        "profile_declaration": profiles.declarations()["PROFILES"][profile],
        "overrides": {"iters": iters, "time": time},
        "schema": SCHEMA,
    }


def write_run_spec(path, experiment: str, step: str, **kwargs) -> RunSpec:
    """Writes run_spec(...) to `path` as spec.json; returns it as a RunSpec."""
    spec = run_spec(experiment, step, **kwargs)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(spec, sort_keys=True))
    return RunSpec.from_dict(spec, str(path))


def profile_of(spec: RunSpec) -> Profile:
    """The Profile a run's action trains under: its profile's declaration, overridden."""
    return Profile.from_declaration(spec.profile, spec.profile_declaration).overridden(
        **spec.overrides
    )


def write_inputs(path, files) -> str:
    """An inputs.txt for experiments/run_step.py (`<short path>\\t<path>` a line): `files`
    are paths, whose short path is their name, or (short path, path) pairs."""
    pairs = [f if isinstance(f, tuple) else (os.path.basename(str(f)), f) for f in files]
    lines = [f"{short}\t{real}\n" for short, real in pairs]
    Path(path).write_text("".join(lines))
    return str(path)


# ---------------------------------------------------------------- a tiny experiment


def metrics_of(losses, val_losses=(), tokens_per_iter=768) -> list[dict]:
    """metrics.jsonl as the trainer writes it: a train record per loss (iters 1, 2, ...),
    then an eval record per validation loss, spread evenly up to the last iteration."""
    recs = [
        {"iter": i, "kind": "train", "loss": loss, "tokens": i * tokens_per_iter}
        for i, loss in enumerate(losses, start=1)
    ]
    n = len(losses)
    for k, v in enumerate(val_losses, start=1):
        it = n * k // len(val_losses)
        recs.append({"iter": it, "kind": "eval", "tokens": it * tokens_per_iter, "val_loss": v})
    return recs


def run_result(
    run: str,
    step: str | None = None,
    seed: int | None = 1337,
    values: dict | None = None,
    checks=(),
    status: str = "done",
    failure: dict | None = None,
    experiment: str = "tiny",
    inputs_sha256: str | None = None,
    built: dict | None = None,
    provenance: dict | None = None,
) -> RunResult:
    """A run's result.json record; the step defaults to the run's name before `-s<seed>`."""
    step = step or run.rsplit("-s", 1)[0]
    return RunResult(
        experiment=experiment,
        step=step,
        run=run,
        seed=seed,
        label=step,
        status=status,
        inputs_sha256=inputs_sha256 or hashlib.sha256(run.encode()).hexdigest(),
        values=dict(values or {}),
        checks=[dict(c) for c in checks],
        failure=failure,
        built=dict(built or {}),
        provenance=provenance or {"machine": {"cpu": "test cpu"}, "versions": {"torch": "t"}},
    )


# The kind of step each report is made from (experiments/experiments.bzl EXPERIMENTS).
KIND_OF_REPORT = {
    "language": "gpt2",
    "language_pruning": "gpt2",
    "classifier": "vision",
    "kv_cache": "kv_cache",
    "decode": "decode",
    "inference": "inference",
}


def write_experiment(
    root,
    results: list[RunResult],
    metrics: dict | None = None,
    experiment: str = "tiny",
    report: str = "language",
    reference: str | dict | None = None,
    profile: str = "cpu",
    entropy: float | None = None,
    settings: dict | None = None,
) -> str:
    """A tiny experiment under `root`: each result's result.json and metrics.jsonl in
    root/<run>/, the dataset's stats.json when `entropy` is given, and experiment.json
    as experiments/defs.bzl writes it (run dirs absolute, so the report and the
    installer find them from any directory). Returns experiment.json's path."""
    root = Path(root)
    runs = []
    for res in results:
        d = root / res.run
        atomic_write_json(str(d / "result.json"), res.to_dict())
        with JsonlWriter(str(d / "metrics.jsonl")) as w:
            for rec in (metrics or {}).get(res.run, []):
                w.write(rec)
        runs.append({"run": res.run, "step": res.step, "seed": res.seed, "dir": str(d)})
    stats = {}
    if entropy is not None:
        atomic_write_json(str(root / "stats.json"), {"unigram_entropy": entropy})
        stats = {"data": str(root / "stats.json")}
    declared_steps = list(dict.fromkeys(r.step for r in results))
    seeds = sorted({r.seed for r in results if r.seed is not None}) or [1337]
    all_settings = {
        "profile": profile,
        "steps": "all",
        "seeds": len(seeds),
        "seed": seeds[0],
        "iters": 0,
        "time": "",
        "tracker": "none",
    }
    all_settings.update(settings or {})
    path = root / "experiment.json"
    atomic_write_json(
        str(path),
        {
            "experiment": experiment,
            "target": f"//experiments:{experiment}",
            "reference": reference,
            "report": report,
            "profile": profile,
            "profile_declaration": profiles.declarations()["PROFILES"][profile],
            "settings": all_settings,
            "flags": [f"--profile={profile}"],
            "steps": [
                {"step": s, "label": s, "kind": KIND_OF_REPORT[report], "declaration": {}}
                for s in declared_steps
            ],
            "runs": runs,
            "stats": stats,
        },
    )
    return str(path)


def gate_runfiles(target: str = "gate_ratio") -> Path:
    """The runfiles root of one of the gate's built experiments (//experiments:gate_ratio,
    :gate_inference): the test's own runfiles under Bazel (a data dependency), bazel-bin's
    under plain pytest."""
    import pytest

    root = Path(__file__).resolve().parent.parent
    for candidate in (
        Path(os.environ.get("TEST_SRCDIR", "/nonexistent")) / "knlp",
        root / "bazel-bin" / "experiments" / f"{target}.install.sh.runfiles" / "knlp",
    ):
        if (candidate / "experiments" / target).is_dir():
            return candidate
    pytest.skip(f"//experiments:{target} is not built (bazel build //experiments:{target})")
