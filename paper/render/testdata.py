"""Small finished runs, shaped as the run record's spec says, for the paper's tests.

Each `*_run(directory)` writes manifest.json, summary.json and (for trainer
runs) val_curves.csv into `directory`, as a run target leaves them under
results/<experiment>/<run_id>/, and returns the directory. The numbers are
made up for the tests; the end-to-end test (paper/e2e_test.py) uses a real run.
"""

import copy
import csv
import json
import statistics
from pathlib import Path

MANIFEST = {
    "schema": 1,
    "experiment": None,
    "run_id": "cpu-1a2b3c4d",
    "created_utc": "2026-12-03T09:30:00Z",
    "command": "bazel run //experiments:gpt2_ratio_ablation -- --seeds 2",
    "argv": ["--seeds", "2"],
    "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
    "versions": {
        "python": "3.11.2",
        "torch": "2.13.0+cpu",
        "cuda": None,
        "rocm": None,
        "numpy": "2.1.0",
        "lock_sha256": "ab" * 32,
        "accelerator": "cpu",
    },
    "machine": {
        "device": "cpu",
        "world_size": 1,
        "cpu": "Test CPU",
        "cpu_count": 2,
        "gpu": None,
        "gpu_memory_gb": None,
        "os": "Linux-6.1",
        "arch": "x86_64",
    },
    "config": {},
}

RATIO_PROFILE = {
    "name": "cpu",
    "dims": {"n_layer": 2, "n_head": 2, "n_embd": 128},
    "max_iters": 30,
    "dataset": "shakespeare_char",
    "block_size": 64,
    "batch_size": 12,
}


def manifest(experiment, **changes):
    m = copy.deepcopy(MANIFEST)
    m["experiment"] = experiment
    for key, value in changes.items():
        m[key] = value
    return m


def write(directory, manifest_, summary, curves=None):
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "manifest.json").write_text(json.dumps(manifest_, indent=1))
    (d / "summary.json").write_text(json.dumps(summary, indent=1))
    if curves is not None:
        with (d / "val_curves.csv").open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["run", "step", "seed", "iter", "tokens", "val_loss"])
            w.writerows(curves)
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


def summary(experiment, steps, runs, metric="val_loss", **extra):
    return {
        "schema": 1,
        "experiment": experiment,
        "run_id": MANIFEST["run_id"],
        "complete": True,
        "metric": metric,
        "metric_label": metric.replace("_", " "),
        "lower_is_better": metric != "test_acc",
        "unigram_entropy": None,
        "steps": steps,
        "runs": runs,
        "checks": [],
        **extra,
    }


def _run(run, step, seed, **values):
    row = dict.fromkeys(
        ("final_val_loss", "best_val_loss", "tokens_seen", "wall_s", "params",
         "kv_bytes_per_token", "sparsity", "target_sparsity", "test_acc", "model_class",
         "label"),
    )  # fmt: skip
    row.update(run=run, step=step, seed=seed, status="done", **values)
    return row


def ratio_run(directory, **manifest_changes):
    """Steps step00 (reference) and step02 (better), two seeds each, two evaluations."""
    finals = {"step00": (2.20, 2.22), "step02": (2.10, 2.12)}
    steps, runs, curves = [], [], []
    for step, (a, b) in finals.items():
        steps.append(
            {"step": step, "label": f"{step} label", "runs": 2, "runs_done": 2,
             "mean": (a + b) / 2, "std": 0.014142,
             "vs_reference": "reference" if step == "step00" else "better"}
        )  # fmt: skip
        for seed, final in zip((1337, 1338), (a, b), strict=True):
            run = f"{step}-s{seed}"
            runs.append(_run(run, step, seed, final_val_loss=final, params=407552))
            curves += [(run, step, seed, 15, 11520, final + 1), (run, step, seed, 30, 23040, final)]
    config = {"profile": RATIO_PROFILE, "seeds": [1337, 1338]}
    m = manifest("gpt2_ratio_ablation", config=config, **manifest_changes)
    return write(
        directory, m, summary("gpt2_ratio_ablation", steps, runs, unigram_entropy=3.3214), curves
    )


def kv_run(directory, **manifest_changes):
    """GPT2 at 12,288 bytes per token against GPT2_MLA at 2,048: a 6x smaller cache."""
    runs = []
    for cls, per_token in (("GPT2", 12288), ("GPT2_MLA", 2048)):
        for t in (256, 512):
            runs.append(
                {"run": cls, "step": cls, "seed": None, "status": "done", "tokens": t,
                 "measured_bytes": per_token * t, "theory_bytes": per_token * t,
                 "bytes_per_token": float(per_token), "rel_error": 0.0, "params": 1000}
            )  # fmt: skip
    steps = [
        {"step": c, "label": c, "runs": 2, "runs_done": 2, "mean": None, "std": None,
         "vs_reference": None}
        for c in ("GPT2", "GPT2_MLA")
    ]  # fmt: skip
    config = {"preset": "124m", "dtype": "float32", "tokens": [256, 512]}
    m = manifest("kvsplice_cache", config=config, **manifest_changes)
    return write(directory, m, summary("kvsplice_cache", steps, runs, metric="bytes_per_token"))


def pruning_run(directory, **manifest_changes):
    """A dense cell (97%) and a magnitude cell at 90% target (reached 90.12%, 95.5%)."""
    cells = [
        ("lenet5-adamw-none", "lenet5 adamw none", None, None, (0.97, 0.97)),
        ("lenet5-adamw-magnitude-90", "lenet5 adamw magnitude 90%", 0.9, 0.9012, (0.95, 0.96)),
    ]
    steps, runs = [], []
    for step, label, target, reached, accs in cells:
        steps.append(
            {"step": step, "label": label, "runs": 2, "runs_done": 2,
             "mean": statistics.fmean(accs), "std": statistics.stdev(accs),
             "vs_reference": None}
        )  # fmt: skip
        for seed, acc in zip((1337, 1338), accs, strict=True):
            runs.append(
                _run(f"{step}-s{seed}", step, seed, test_acc=acc, sparsity=reached,
                     target_sparsity=target, label=label, model_class="lenet5")
            )  # fmt: skip
    m = manifest("pruning_matrix", config={"seeds": [1337, 1338]}, **manifest_changes)
    return write(directory, m, summary("pruning_matrix", steps, runs, metric="test_acc"))


def decode_run(directory, measured=False, **manifest_changes):
    rows = [
        {"model": "gpt2", "batch": 1, "context": 2048, "contig_us": 10.0, "contig_gbps": 1500.0,
         "contig_copy_frac": 0.5, "paged_us": 11.0, "paged_gbps": 1400.0,
         "paged_copy_frac": 0.47, "sdpa_us": 20.0, "sdpa_gbps": 700.0, "speedup_vs_sdpa": 2.0}
    ]  # fmt: skip
    extra = {
        "measured": measured,
        "device": "NVIDIA H100" if measured else "CPU SMOKE TEST",
        "copy_gbps": 3000.0 if measured else None,
    }
    m = manifest("bench_decode", **manifest_changes)
    s = summary("bench_decode", [], rows, metric="contig_gbps", **extra)
    return write(directory, m, s)


RUNS = {
    "gpt2_ratio_ablation": ratio_run,
    "kvsplice_cache": kv_run,
    "pruning_matrix": pruning_run,
    "bench_decode": decode_run,
}
