"""One run of one step as a Bazel action: train (or measure) it, and write its record.

    run_step --spec spec.json --inputs inputs.txt --data-root DIR \
             --venv-info venv_info.json --out DIR [--store DIR]

experiments/defs.bzl runs this once per (step, seed) of an experiment,
with the run's spec (experiments/record.py RunSpec: the step's declaration,
the profile's, the overrides) and the list of every file the action reads.
It writes into --out:

  metrics.jsonl  one record per logged iteration and per evaluation (trainer.py),
                 each logged iteration with the telemetry sampler's means over its
                 interval (experiments/telemetry.py: gpu/* on a GPU, cpu/* on the CPU)
  log.txt        the run's log, every attempt of it
  model.pt       the final weights (state_dict), for analysis without a retrain
  result.json    last: status, figures, research checks, inputs digest, machine

(a measuring kind writes log.txt and result.json only). The run trains in its
directory of the checkpoint store (experiments/store.py), keyed by the digest
of its inputs (experiments/digest.py), so a run killed in the middle resumes
from its last checkpoint when the same action runs again; SIGTERM (Bazel's
Ctrl-C) saves a checkpoint at once, and so does the death of the Bazel server
that started it (`watch_ancestors`).

A failure that the same inputs would repeat is a result: a NaN loss, or a
declaration that cannot build, ends with result.json's status "failed" and
exit 0. Anything else (out of memory, a kill, a full disk) fails the action
with one line on stderr and exit 1; the checkpoint stays, and the next build
retries and resumes.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import os
import signal
import sys
import threading
import time
import traceback

# What a run's `kind` is built by: each module has `build(spec, profile, device,
# data_root) -> StepBuild` (training) or `measure(spec, profile, device,
# data_root, log) -> (values, checks)` (measuring). A step
# program holds only its own kind's module (experiments/BUILD.bazel).
KINDS = {
    "gpt2": "experiments.gpt2_step",
    "vision": "experiments.vision_step",
    "kv_cache": "experiments.kv_cache_step",
    "decode": "experiments.decode_step",
    "inference": "experiments.inference_step",
    "bigram": "experiments.bigram_step",  # the runner's tests' kind: no experiment declares it
}


def parent_of(pid: int) -> int | None:
    """The parent pid of `pid` (from /proc), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def ancestors() -> list[tuple[int, int]]:
    """(pid, parent pid) of every ancestor of this process below init."""
    chain, pid = [], os.getpid()
    while True:
        parent = parent_of(pid)
        if not parent or parent <= 1:
            return chain
        chain.append((pid, parent))
        pid = parent


def watch_ancestors(on_gone, interval: float = 1.0) -> threading.Thread:
    """Calls `on_gone()` once any ancestor of this process dies (its child is re-parented).

    Killing the Bazel server (or a remote worker) leaves its actions running
    with no one to take their outputs; a run that notices stops with a
    checkpoint, so the next build resumes it instead of racing it.
    """
    chain = ancestors()

    def watch():
        while True:
            time.sleep(interval)
            if any(parent_of(pid) != parent for pid, parent in chain):
                on_gone()
                return

    t = threading.Thread(target=watch, name="watch-ancestors", daemon=True)
    t.start()
    return t


class Log:
    """Appends to the run's log in the store (flushed per line) and prints to stderr."""

    def __init__(self, path: str, run: str):
        self.path, self.run = path, run

    def __call__(self, msg: str) -> None:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = f"{stamp} {self.run}: {msg}"
        print(line, file=sys.stderr, flush=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="the run's spec.json")
    ap.add_argument("--inputs", required=True, help="every input: <short path>\\t<path> a line")
    ap.add_argument("--data-root", default=None, help="the directory holding the dataset's")
    ap.add_argument("--venv-info", default=None, help="@pip//:venv_info.json")
    ap.add_argument("--out", required=True, help="the directory of the run's outputs")
    ap.add_argument("--store", default=None, help="checkpoint store root (default: per user)")
    return ap.parse_args(argv)


def relaunch_under_torchrun(gpus: int) -> None:
    """A multi-GPU profile trains one process per GPU: re-executes this program under
    torchrun, which sets WORLD_SIZE (experiments/distributed.py setup_distributed)."""
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={gpus}",
        sys.argv[0],
        *sys.argv[1:],
    ]
    os.execv(sys.executable, argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Imports after parsing: --help and bad flags answer without torch.
    from experiments.digest import inputs_digest, read_inputs
    from experiments.record import RunSpec
    from experiments.results import read_json
    from experiments.run_profile import Profile

    spec = RunSpec.from_dict(read_json(args.spec), args.spec)
    profile = Profile.from_declaration(spec.profile, spec.profile_declaration).overridden(
        **spec.overrides
    )
    if profile.gpus > 1 and "WORLD_SIZE" not in os.environ:
        relaunch_under_torchrun(profile.gpus)
    digest = inputs_digest(read_inputs(args.inputs))
    return Run(spec, profile, digest, args).execute()


class Run:
    """One attempt at a run: holds its store directory and GPUs while it trains."""

    def __init__(self, spec, profile, digest, args):
        self.spec, self.profile, self.digest, self.args = spec, profile, digest, args
        self.stop = False
        self.telemetry = None  # the sampler's backend, for the record

    def execute(self) -> int:
        import torch

        from experiments import gpu_runtime
        from experiments.distributed import setup_distributed
        from experiments.store import DeviceLock, RunStore, StoreError

        self.info, self.device = setup_distributed(self.profile.device)
        if self.profile.threads:
            torch.set_num_threads(self.profile.threads)
        try:
            store = RunStore(
                self.digest, self.args.store, wait_log=self._say, lock=self.info.is_main
            )
        except StoreError as e:
            print(f"run_step: {self.spec.run}: {e}", file=sys.stderr)
            return 1
        self.store = store
        self.log = Log(store.log, self.spec.run) if self.info.is_main else self._say
        gpus = None
        if self.device.startswith("cuda") and self.info.is_main:
            gpus = DeviceLock(max(1, self.profile.gpus), self.args.store, self.log)
        try:
            self.runtime = gpu_runtime.apply(self.profile.gpu_runtime)
            signal.signal(signal.SIGTERM, self._on_sigterm)
            watch_ancestors(self._on_orphaned)
            self.log(
                f"{self.spec.label} ({self.spec.kind}, profile {self.profile.name}, seed "
                f"{self.spec.seed}), inputs {self.digest[:12]}, live log {store.log}"
            )
            status = self._run()
        except Exception as e:  # noqa: BLE001 - the machine's failures, one line each
            self.log(traceback.format_exc().rstrip())
            print(
                f"run_step: {self.spec.run}: {_one_line(e)}. Its checkpoint stays in "
                f"{store.dir}; build again to resume",
                file=sys.stderr,
            )
            status = 1
        finally:
            if gpus:
                gpus.release()
        if status == 0 and self.info.is_main:
            store.remove()
        else:
            store.release()
        return status

    def _say(self, msg: str) -> None:
        print(f"{self.spec.run}: {msg}", file=sys.stderr, flush=True)

    def _on_sigterm(self, signum, frame) -> None:
        self.stop = "SIGTERM"

    def _on_orphaned(self) -> None:
        self.log("the build that started this run is gone; stopping at the next iteration")
        self.stop = "the build's end"

    def _run(self) -> int:
        kind = importlib.import_module(KINDS[self.spec.kind])
        if hasattr(kind, "measure"):
            values, checks = kind.measure(
                self.spec, self.profile, self.device, self.args.data_root, self.log
            )
            self._write_result("done", values, checks, {})
            return 0
        return self._train(kind)

    def _train(self, kind) -> int:
        from experiments import telemetry
        from experiments.trainer import Trainer, TrainingFailure, TrainingInterrupted

        t0 = time.time()
        try:
            built = kind.build(self.spec, self.profile, self.device, self.args.data_root)
        except (ValueError, TypeError, KeyError) as e:  # a declaration that cannot build
            return self._record_failure("error", e, None, {})
        sampler = telemetry.make_sampler(self.device, log=self.log) if self.info.is_main else None
        self.telemetry = sampler.name if sampler else None
        trainer = Trainer(
            model=built.model,
            optimizer=built.optimizer,
            get_batch=built.get_batch,
            cfg=built.train_cfg,
            metrics_path=self.store.metrics,
            checkpoint_path=self.store.checkpoint,
            hooks=built.hooks,
            step_name=self.spec.run,
            dist_info=self.info,
            log=self.log,
            should_stop=lambda: bool(self.stop),
            sampler=sampler,
        )
        try:
            result = trainer.fit()
        except TrainingInterrupted as e:
            self.log(f"stopped by {self.stop} at iter {e.iteration}; checkpoint saved")
            print(
                f"run_step: {self.spec.run}: stopped by {self.stop} at iter {e.iteration}; "
                f"the checkpoint is kept in {self.store.dir}; build again to resume",
                file=sys.stderr,
            )
            return 1
        except TrainingFailure as e:
            if e.reason != "nan_loss":
                raise
            return self._record_failure("nan_loss", e, trainer.raw_model, built.built)
        if not self.info.is_main:
            return 0
        figures, checks = built.finish(trainer.raw_model) if built.finish else ({}, [])
        result.pop("evals", None)
        values = {**built.values, **result, **figures, "run_wall_s": time.time() - t0}
        values["resumed_from"] = trainer.start_iter or None
        self._write_model(trainer.raw_model.state_dict())
        self._write_result("done", values, checks, built.built)
        return 0

    def _record_failure(self, reason, error, model, built) -> int:
        """A deterministic failure: recorded as the run's result; the action succeeds."""
        self.log(f"FAILED ({reason}): {error}")
        if self.info.is_main:
            self._write_model(model.state_dict() if model is not None else {})
            failure = {
                "reason": reason,
                "message": str(error)[:2000],
                "traceback": traceback.format_exc()[-4000:],
            }
            self._write_result("failed", {}, [], built, failure)
        return 0

    def _write_model(self, state) -> None:
        import torch

        from experiments.results import atomic_write

        atomic_write(os.path.join(self.args.out, "model.pt"), lambda f: torch.save(state, f))

    def _write_result(self, status, values, checks, built, failure=None) -> None:
        """metrics.jsonl and log.txt from the store, then result.json last."""
        from experiments import provenance
        from experiments.record import RunResult
        from experiments.results import atomic_write_bytes, atomic_write_json, file_digest

        out = self.args.out
        outputs = ["log.txt"]
        if hasattr(importlib.import_module(KINDS[self.spec.kind]), "build"):
            outputs = ["metrics.jsonl", "log.txt", "model.pt"]
            if not os.path.exists(self.store.metrics):
                open(self.store.metrics, "a").close()  # noqa: SIM115 - a run that failed first
        self.log(f"{status}; writing {', '.join(outputs)} and result.json")
        for name in ("metrics.jsonl", "log.txt"):
            if name in outputs:
                with open(self.store.path(name), "rb") as f:
                    atomic_write_bytes(os.path.join(out, name), f.read())
        files = {name: file_digest(os.path.join(out, name)) for name in outputs}
        result = RunResult(
            experiment=self.spec.experiment,
            step=self.spec.step,
            run=self.spec.run,
            seed=self.spec.seed,
            label=self.spec.label,
            status=status,
            inputs_sha256=self.digest,
            values=values,
            checks=checks,
            failure=failure,
            provenance={
                "machine": provenance.machine(self.device, self.info.world_size),
                "versions": provenance.versions(self.args.venv_info),
                "gpu_runtime": self.runtime,
                "telemetry": self.telemetry,
            },
            built=built,
            files=files,
        )
        atomic_write_json(os.path.join(out, "result.json"), result.to_dict())


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(e).__name__}: {first}"[:300]


if __name__ == "__main__":
    sys.exit(main())
