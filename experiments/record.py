"""The run record's schema: what a run's action, the report and the installer write, and
what tools/verify_runs, the paper's importer, renderers and test data read.

Four documents make a record, each a class here with `to_dict()` and a
checking `from_dict()`; nobody else spells their keys:

  RunSpec     spec.json: what one run's action is asked to do (written by Bazel,
              experiments/defs.bzl): experiment, step, seed, kind, the
              step's declaration, the profile's declaration and the overrides
  RunResult   result.json: what the run did (experiments/run_step.py): status,
              figures, research checks, the digest of its inputs, provenance
  Summary     summary.json: the report over every run of an experiment
              (experiments/report.py): per step, per run, the checks
  Manifest    manifest.json: the installed run as a whole (experiments/install.py):
              git commit, command, the digest of every run, machine and versions

and val_curves.csv (`CURVE_COLUMNS`): every evaluation of every done run.
`from_dict` raises RecordError naming the file and the key, so a damaged or
foreign file fails with one line. This module imports no torch, so the paper
and the installer load records without it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# 3: summary.json's steps carry the paired comparison (StepRow's COMPARISON_FIELDS) and
# its reference may be a mapping step -> reference.
SCHEMA = 3

# The statuses of a run's result. A failed run is a result too (a NaN loss is a
# finding); failures of the machine (OOM, a kill, a full disk) fail the action
# instead and leave no result.
STATUSES = ("done", "failed")
# Deterministic failures a result records.
FAILURES = ("nan_loss", "error")

# val_curves.csv: one row per evaluation record of every done run.
CURVE_COLUMNS = ("run", "step", "seed", "iter", "tokens", "val_loss")

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
    "runs",
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


class RecordError(ValueError):
    """A record file that does not have the declared shape; the message names file and key."""


_ABSENT = object()


def _lookup(obj: dict, dotted: str):
    cur = obj
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


_TYPES = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "dict": (dict,),
    "list": (list,),
    "None": (type(None),),
}


def _types(annotation: str) -> tuple:
    """The runtime types a field's annotation ("float | None") accepts."""
    return tuple(t for part in str(annotation).split("|") for t in _TYPES[part.strip()])


class _Record:
    """to_dict/from_dict for the dataclasses below: every field present, of its type."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, obj, where: str = "record"):
        name = cls.__name__
        if not isinstance(obj, dict):
            raise RecordError(f"{where}: a {name} is a JSON object, got {type(obj).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        missing = [
            n
            for n, f in fields.items()
            if n not in obj
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise RecordError(f"{where}: missing key(s) {', '.join(missing)} of a {name}")
        if "schema" in fields and obj.get("schema", SCHEMA) != SCHEMA:
            raise RecordError(
                f"{where}: schema {obj.get('schema')!r}; this tree reads schema {SCHEMA} "
                "(reinstall the run, or re-import it into paper/data)"
            )
        values = {}
        for n, f in fields.items():
            if n not in obj:
                continue
            v = obj[n]
            allowed = _types(f.type)
            if not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed):
                raise RecordError(f"{where}: {n} is {v!r}, not a {f.type}")
            values[n] = v
        rec = cls(**values)
        rec.check(where)
        return rec

    def check(self, where: str) -> None:
        """Constraints beyond types; overridden where a class has some."""


@dataclass(frozen=True)
class RunSpec(_Record):
    """spec.json: one run of one step, as the build asks for it."""

    experiment: str
    step: str  # the step's name: "step08", "MLA", "lenet5-adamw-bitter7-70"
    run: str  # the run's name: "<step>-s<seed>", or the step's name when unseeded
    label: str  # what the step is, for tables
    seed: int | None  # None for a measurement that takes no seed
    kind: str  # which step module builds it (experiments/run_step.py KINDS)
    declaration: dict  # the step's declaration, as the kind reads it
    profile: str
    profile_declaration: dict  # the profile's entry of experiments/profiles.bzl
    overrides: dict  # {"iters": int | None, "time": str | None}
    schema: int = SCHEMA

    def check(self, where: str) -> None:
        unknown = set(self.overrides) - {"iters", "time"}
        if unknown:
            raise RecordError(
                f"{where}: unknown overrides {sorted(unknown)}; accepted: iters, time"
            )


@dataclass(frozen=True)
class RunResult(_Record):
    """result.json: what one run did. `values` are its figures (FIGURES names the common
    ones), `checks` its research checks, `built` what its declaration built,
    `inputs_sha256` the digest of everything its action read (experiments/digest.py)."""

    experiment: str
    step: str
    run: str
    seed: int | None
    label: str
    status: str  # STATUSES
    inputs_sha256: str
    values: dict
    checks: list = field(default_factory=list)
    failure: dict | None = None  # {"reason": FAILURES, "message", "traceback"}
    built: dict = field(default_factory=dict)  # what was built: class, config, optimizer, ...
    provenance: dict = field(default_factory=dict)  # machine, versions, gpu runtime, telemetry
    files: dict = field(default_factory=dict)  # output file -> {"sha256", "bytes"}
    schema: int = SCHEMA

    def check(self, where: str) -> None:
        if self.status not in STATUSES:
            raise RecordError(f"{where}: status {self.status!r}; accepted: {', '.join(STATUSES)}")
        if self.status == "failed":
            reason = (self.failure or {}).get("reason")
            if reason not in FAILURES:
                raise RecordError(
                    f"{where}: a failed run's failure.reason is {reason!r}; "
                    f"accepted: {', '.join(FAILURES)}"
                )

    @property
    def done(self) -> bool:
        return self.status == "done"


# The figures a run's `values` may hold, and what each is.
FIGURES = {
    "iters": "iterations trained",
    "stop_reason": "max_iters or time_budget",
    "tokens": "tokens trained on",
    "wall_s": "training wall time, resumes included",
    "tokens_per_s_median": "median training throughput",
    "first_loss": "the first iteration's training loss",
    "final_train_loss": "the mean training loss of the last 10 iterations",
    "val_loss": "the final validation loss",
    "val_ppl": "exp(val_loss)",
    "best_val_loss": "the lowest validation loss of any evaluation",
    "compiled": "whether torch.compile ran",
    "params": "the model's parameter count",
    "kv_bytes_per_token": "attention-cache bytes per token, all layers",
    "model_class": "the model's class",
    "sparsity": "the fraction of prunable weights that are zero",
    "target_sparsity": "the pruning target",
    "sparsity_attention": "the fraction of a GPT-2's attention weights that are zero",
    "sparsity_mlp": "the fraction of a GPT-2's MLP weights that are zero",
    "sparsity_head": "the fraction of a GPT-2's tied head (and token embedding) that is zero",
    "test_acc": "test-set accuracy (classifiers)",
}


# A StepRow's comparison with its reference (experiments/verdicts.py); all None for a
# step compared with nothing (the reference itself, or a step whose reference did not run).
COMPARISON_FIELDS = ("reference", "difference", "low", "high", "p", "p_adjusted", "test", "reason")


@dataclass(frozen=True)
class StepRow(_Record):
    """summary.json steps[]: one step over its seeds, and its comparison with its reference:
    the mean (paired) difference of the metric, step minus reference, its 95% interval,
    p before and after Holm's correction over the table, and the test that gave them."""

    step: str
    label: str
    runs: int
    runs_done: int
    mean: float | None
    std: float | None
    vs_reference: str | None  # "reference", "better", "worse", "not resolved", or None
    reference: str | None  # the step it is compared with
    difference: float | None  # mean of step - reference (paired), or of the means (Welch)
    low: float | None  # the difference's 95% interval; None where it cannot be estimated
    high: float | None
    p: float | None  # two-sided, before the correction
    p_adjusted: float | None  # Holm over every comparison of the table
    test: str | None  # "paired t", "Welch t (unpaired)" (experiments/verdicts.py)
    reason: str | None  # why the unpaired test was used; "" for the paired one


@dataclass(frozen=True)
class CheckRow(_Record):
    """summary.json checks[]: one research check of one run or step."""

    subject: str
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Summary(_Record):
    """summary.json: the report of an experiment's runs. `runs` rows hold `run`, `step`,
    `seed`, `status`, `failure`, `label`, then the report's own columns; `extra` holds an
    experiment's figures that are not per run (bench_decode's device and copy bandwidth)."""

    experiment: str
    run_id: str
    complete: bool
    metric: str
    metric_label: str
    lower_is_better: bool
    reference: str | dict | None  # one step every step is compared with, or step -> reference
    unigram_entropy: float | None
    steps: list
    runs: list
    checks: list
    extra: dict = field(default_factory=dict)
    schema: int = SCHEMA

    def check(self, where: str) -> None:
        for i, st in enumerate(self.steps):
            StepRow.from_dict(st, f"{where}: steps[{i}]")
        for i, c in enumerate(self.checks):
            CheckRow.from_dict(c, f"{where}: checks[{i}]")
        for i, r in enumerate(self.runs):
            missing = [k for k in RUN_ROW_KEYS if not isinstance(r, dict) or k not in r]
            if missing:
                raise RecordError(f"{where}: runs[{i}] lacks {', '.join(missing)}")


# The keys every summary.json runs row has, before the report's own columns.
RUN_ROW_KEYS = ("run", "step", "seed", "status", "failure", "label")


@dataclass(frozen=True)
class Manifest(_Record):
    """manifest.json: the installed run: what was run, from which commit, where."""

    experiment: str
    run_id: str
    created_utc: str
    command: str
    git: dict  # {"commit", "dirty"}
    versions: dict  # python, torch, cuda, rocm, numpy, lock_sha256, accelerator
    machine: dict  # device, world_size, cpu, cpu_count, gpu, gpu_memory_gb, os, arch
    train: dict  # the comparable settings (COMPARABLE_FIELDS' train.*)
    config: dict  # the run's settings and the declarations its runs were made from
    runs: dict  # run -> the sha256 of its action's inputs
    invocations: list = field(default_factory=list)
    schema: int = SCHEMA
