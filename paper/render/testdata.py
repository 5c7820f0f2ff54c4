"""Small installed runs for the paper's tests, built with the run record's own classes.

Each `*_run(directory, **manifest_changes)` writes manifest.json, summary.json
and (for trained experiments) val_curves.csv into `directory`, as
experiments/install.py leaves them under results/<experiment>/<run_id>/, and
returns the directory. Every document is a class of experiments/record.py
(Manifest, Summary, StepRow, CURVE_COLUMNS) written with its `to_dict()`, so a
change of the schema changes the test data with it. `manifest_changes` replace
Manifest fields (`git={"commit": ..., "dirty": True}`). The numbers and digests
are made up for the tests; the end-to-end test (paper/e2e_test.py) uses a real
run.
"""

import dataclasses
import hashlib
import statistics
from pathlib import Path

from experiments.record import COMPARISON_FIELDS, CURVE_COLUMNS, Manifest, StepRow, Summary
from experiments.results import atomic_write_json, write_csv

RUN_ID = "cpu-1a2b3c4d"
SEEDS = (1337, 1338)

VERSIONS = {
    "python": "3.11.2",
    "torch": "2.13.0+cpu",
    "cuda": None,
    "rocm": None,
    "numpy": "2.1.0",
    "lock_sha256": "ab" * 32,
    "accelerator": "cpu",
}
MACHINE = {
    "device": "cpu",
    "world_size": 1,
    "cpu": "Test CPU",
    "cpu_count": 2,
    "gpu": None,
    "gpu_memory_gb": None,
    "os": "Linux-6.1",
    "arch": "x86_64",
}

# The cpu profile's declaration as the manifest's config.profile holds it.
RATIO_PROFILE = {
    "name": "cpu",
    "description": "a test profile",
    "device": "cpu",
    "gpus": 0,
    "gpu_target": None,
    "accelerator": "cpu",
    "dataset": "shakespeare_char",
    "dims": {"n_layer": 2, "n_head": 2, "n_embd": 128},
    "threads": 1,
    "block_size": 64,
    "batch_size": 12,
    "grad_accum": 1,
    "gpu_runtime": None,
    "train": {"max_iters": 800, "eval_interval": 400, "eval_iters": 40, "compile": False},
}
RATIO_TRAIN = {
    "effective_batch_tokens": 768,
    "effective_batch": 12,
    "max_iters": 30,
    "time_budget_s": None,
    "compile": False,
    "dataset": "shakespeare_char",
    "eval_protocol": "40 batches of 12x64 every 15 iters",
    "dtype": "float32",
    "seed": SEEDS[0],
    "seeds": list(SEEDS),
}


def digest(run):
    """A made-up inputs digest of a run: 64 hex digits, different per run."""
    return hashlib.sha256(f"test inputs of {run}".encode()).hexdigest()


def manifest(experiment, runs, config, train=None, **changes):
    """The Manifest of a test run of `experiment` whose runs are `runs` (names)."""
    m = Manifest(
        experiment=experiment,
        run_id=RUN_ID,
        created_utc="2026-12-03T09:30:00Z",
        command=f"bazel run //experiments:{experiment} --seeds=2",
        git={"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
        versions=dict(VERSIONS),
        machine=dict(MACHINE),
        train=dict(train or {}),
        config=config,
        runs={run: digest(run) for run in runs},
    )
    return dataclasses.replace(m, **changes)


def config(steps, reference=None, profile=None, declarations=None):
    """A manifest's config: the profile, the settings and the steps' declarations."""
    declarations = declarations or {}
    return {
        "profile": profile or dict(RATIO_PROFILE),
        "settings": {"profile": "cpu", "steps": "all", "seeds": len(SEEDS), "seed": SEEDS[0]},
        "steps": [
            {"step": s, "label": s, "kind": "test", "declaration": declarations.get(s, {})}
            for s in steps
        ],
        "reference": reference,
    }


def summary(experiment, steps, runs, metric="val_loss", **changes):
    """The Summary of a test run: `steps` are StepRows, `runs` summary runs rows."""
    s = Summary(
        experiment=experiment,
        run_id=RUN_ID,
        complete=True,
        metric=metric,
        metric_label=metric.replace("_", " "),
        lower_is_better=metric != "test_acc",
        reference=None,
        unigram_entropy=None,
        steps=[st.to_dict() for st in steps],
        runs=runs,
        checks=[],
    )
    return dataclasses.replace(s, **changes)


def write(directory, manifest_, summary_, curves=None):
    """The run's files: each record's to_dict(), and val_curves.csv where given."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_json(str(d / "manifest.json"), manifest_.to_dict())
    atomic_write_json(str(d / "summary.json"), summary_.to_dict())
    if curves is not None:
        write_csv(str(d / "val_curves.csv"), CURVE_COLUMNS, curves)
    return d


def files(directory):
    return sorted(str(p) for p in Path(directory).iterdir() if p.is_file())


def macros_of(text):
    """{name: value} of the \\newcommand lines texgen.py writes."""
    out = {}
    for line in text.splitlines():
        if line.startswith("\\newcommand{\\"):
            name, value = line[len("\\newcommand{\\") :].split("}{", 1)
            out[name] = value[:-1]
    return out


def run_row(run, step, seed, label, **values):
    """A summary.json runs row: record.RUN_ROW_KEYS, then the report's own columns."""
    return {
        "run": run, "step": step, "seed": seed, "status": "done", "failure": None,
        "label": label, **values,
    }  # fmt: skip


# The columns experiments/summary.py gives every trained run's row (RUN_FIELDS).
TRAINED_COLUMNS = (
    "final_val_loss", "best_val_loss", "tokens_seen", "wall_s", "params",
    "kv_bytes_per_token", "sparsity", "target_sparsity", "test_acc", "model_class",
    "val_ppl", "sparsity_attention", "sparsity_mlp", "sparsity_head",
)  # fmt: skip


def trained_row(run, step, seed, label, **values):
    """A trained run's row: every TRAINED_COLUMNS column, null unless given."""
    return run_row(run, step, seed, label, **{**dict.fromkeys(TRAINED_COLUMNS), **values})


def step_row(step, label, values, vs_reference=None, **comparison):
    """A StepRow over a step's seeds; `comparison` sets record.COMPARISON_FIELDS (None
    unless given)."""
    return StepRow(
        step=step,
        label=label,
        runs=len(values),
        runs_done=len(values),
        mean=statistics.fmean(values) if values else None,
        std=statistics.stdev(values) if len(values) > 1 else None,
        vs_reference=vs_reference,
        **{**dict.fromkeys(COMPARISON_FIELDS), **comparison},
    )


def paired(reference, difference, low, high, p):
    """A paired comparison of two seeds' steps, alone in its table (Holm changes nothing)."""
    return dict(
        reference=reference, difference=difference, low=low, high=high, p=p, p_adjusted=p,
        test="paired t", reason="",
    )  # fmt: skip


def ratio_run(directory, **manifest_changes):
    """Steps step00 (reference) and step02 (better), two seeds each, two evaluations."""
    finals = {"step00": (2.20, 2.22), "step02": (2.10, 2.12)}
    steps, runs, curves = [], [], []
    for step, losses in finals.items():
        if step == "step00":
            steps.append(step_row(step, f"{step} label", losses, "reference"))
        else:
            compared = paired("step00", -0.1, -0.13, -0.07, 0.003)
            steps.append(step_row(step, f"{step} label", losses, "better", **compared))
        for seed, final in zip(SEEDS, losses, strict=True):
            run = f"{step}-s{seed}"
            runs.append(trained_row(run, step, seed, f"{step} label", final_val_loss=final,
                                    params=407552))  # fmt: skip
            for it, tokens, loss in ((15, 11520, final + 1), (30, 23040, final)):
                curves.append(
                    {"run": run, "step": step, "seed": seed, "iter": it, "tokens": tokens,
                     "val_loss": loss}
                )  # fmt: skip
    experiment = "gpt2_ratio_ablation"
    m = manifest(
        experiment,
        [r["run"] for r in runs],
        config(list(finals), reference="step00"),
        RATIO_TRAIN,
        **manifest_changes,
    )
    s = summary(experiment, steps, runs, reference="step00", unigram_entropy=3.3214)
    return write(directory, m, s, curves)


KV_DECLARATION = {"preset": "124m", "dtype": "float32", "tokens": [256, 512]}


def kv_run(directory, **manifest_changes):
    """GPT2 at 12,288 bytes per token against GPT2_MLA at 2,048: a 6x smaller cache."""
    runs, steps = [], []
    for cls, per_token in (("GPT2", 12288), ("GPT2_MLA", 2048)):
        steps.append(step_row(cls, cls, [float(per_token)]))
        for t in (256, 512):
            runs.append(
                run_row(cls, cls, None, cls, params=1000, tokens=t,
                        measured_bytes=per_token * t, theory_bytes=per_token * t,
                        bytes_per_token=float(per_token), rel_error=0.0)
            )  # fmt: skip
    classes = [st.step for st in steps]
    declarations = {c: dict(KV_DECLARATION, **{"class": c}) for c in classes}
    cfg = config(classes, declarations=declarations)
    m = manifest("kvsplice_cache", classes, cfg, {"dataset": None}, **manifest_changes)
    return write(directory, m, summary("kvsplice_cache", steps, runs, metric="bytes_per_token"))


def pruning_run(directory, **manifest_changes):
    """A dense cell (97%) and a magnitude cell at 90% target (reached 90.12%, 95.5%)."""
    cells = [
        ("lenet5-adamw-none", "lenet5 adamw none", None, None, (0.97, 0.97)),
        ("lenet5-adamw-magnitude-90", "lenet5 adamw magnitude 90%", 0.9, 0.9012, (0.95, 0.96)),
    ]
    steps, runs = [], []
    for step, label, target, reached, accs in cells:
        if target is None:
            steps.append(step_row(step, label, accs, "reference"))
        else:
            compared = paired("lenet5-adamw-none", -0.015, -0.079, 0.049, 0.20)
            steps.append(step_row(step, label, accs, "not resolved", **compared))
        for seed, acc in zip(SEEDS, accs, strict=True):
            runs.append(
                trained_row(f"{step}-s{seed}", step, seed, label, test_acc=acc,
                            sparsity=reached, target_sparsity=target, model_class="lenet5")
            )  # fmt: skip
    names = [r["run"] for r in runs]
    cfg = config([c[0] for c in cells])
    m = manifest("pruning_matrix", names, cfg, {"dataset": "digits"}, **manifest_changes)
    return write(directory, m, summary("pruning_matrix", steps, runs, metric="test_acc"))


# gpt2_pruning's test run: the dense step and two pruned ones of adamw, two seeds each:
# (final val losses, sparsity over all and per type, verdict, difference, interval).
GPT2_PRUNING = {
    "adamw-none": ((2.10, 2.12), None, "reference", None),
    "adamw-bitter7": (
        (2.14, 2.17), (0.5, 0.45, 0.55, 0.40), "worse", (0.045, 0.02, 0.07, 0.01),
    ),
    "adamw-movement": (
        (2.20, 2.24), (0.5, 0.50, 0.52, 0.44), "worse", (0.11, 0.08, 0.14, 0.004),
    ),
}  # fmt: skip


def gpt2_pruning_run(directory, device="cpu", **manifest_changes):
    """The dense adamw step and bitter7 and movement against it; the cpu profile unless
    `device` says otherwise."""
    steps, runs, curves = [], [], []
    for step, (losses, sparsity, verdict, diff) in GPT2_PRUNING.items():
        compared = {} if diff is None else paired("adamw-none", *diff)
        steps.append(step_row(step, f"{step} label", losses, verdict, **compared))
        for seed, final in zip(SEEDS, losses, strict=True):
            run = f"{step}-s{seed}"
            types = {} if sparsity is None else dict(
                sparsity=sparsity[0], target_sparsity=0.5, sparsity_attention=sparsity[1],
                sparsity_mlp=sparsity[2], sparsity_head=sparsity[3],
            )  # fmt: skip
            runs.append(
                trained_row(run, step, seed, f"{step} label", final_val_loss=final,
                            val_ppl=round(2.718281828459045**final, 6), **types)
            )  # fmt: skip
            for it, tokens, loss in ((80, 61440, final + 1), (160, 122880, final + 0.5),
                                     (240, 184320, final)):  # fmt: skip
                curves.append(
                    {"run": run, "step": step, "seed": seed, "iter": it, "tokens": tokens,
                     "val_loss": loss}
                )  # fmt: skip
    experiment = "gpt2_pruning"
    reference = {s: "adamw-none" for s in GPT2_PRUNING if s != "adamw-none"}
    profile = dict(RATIO_PROFILE, device=device)
    m = manifest(
        experiment,
        [r["run"] for r in runs],
        config(list(GPT2_PRUNING), reference=reference, profile=profile),
        dict(RATIO_TRAIN, max_iters=240),
        **manifest_changes,
    )
    s = summary(experiment, steps, runs, reference=reference, unigram_entropy=3.3214)
    return write(directory, m, s, curves)


DECODE_ROW = {
    "model": "gpt2", "batch": 1, "context": 2048, "contig_us": 10.0, "contig_gbps": 1500.0,
    "contig_copy_frac": 0.5, "paged_us": 11.0, "paged_gbps": 1400.0, "paged_copy_frac": 0.47,
    "sdpa_us": 20.0, "sdpa_gbps": 700.0, "speedup_vs_sdpa": 2.0,
}  # fmt: skip


def decode_run(directory, measured=False, **manifest_changes):
    """One decode run's rows; `measured` false is the CPU smoke test (no copy bandwidth)."""
    rows = [run_row("decode", "decode", None, "K16/V8 decode bandwidth", **DECODE_ROW)]
    extra = {
        "measured": measured,
        "device": "NVIDIA H100" if measured else "CPU SMOKE TEST",
        "copy_gbps": 3000.0 if measured else None,
    }
    m = manifest("bench_decode", ["decode"], config(["decode"]), **manifest_changes)
    s = summary("bench_decode", [], rows, metric="contig_gbps", extra=extra)
    return write(directory, m, s)


RUNS = {
    "gpt2_ratio_ablation": ratio_run,
    "gpt2_pruning": gpt2_pruning_run,
    "kvsplice_cache": kv_run,
    "pruning_matrix": pruning_run,
    "bench_decode": decode_run,
}
