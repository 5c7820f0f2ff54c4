"""The run targets end to end at tiny budgets: resume, SIGKILL, failures, steps reach models."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from data.text import open_dataset
from experiments import bench_decode, kvsplice_cache, options, pruning_matrix, runner, summary
from experiments.ablations import registry
from experiments.ddp_check import BigramLM
from experiments.gpt2_common import build_gpt2_step, main, step_config
from experiments.gpt2_ratio_ablation import RATIO
from experiments.gpt2_variants import VARIANTS
from experiments.options import RunOptions
from experiments.profiles import PROFILES, resolve
from experiments.results import RunDir, missing_fields, read_json, read_jsonl
from experiments.trainer import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    return dict(
        os.environ,
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
        PYTHONUNBUFFERED="1",
    )


def _ablation_cmd(results, *extra):
    return [
        sys.executable,
        "-m",
        "experiments.gpt2_ratio_ablation",
        "--steps",
        "0,8",
        "--iters",
        "6",
        "--checkpoint-interval",
        "2",
        "--results-dir",
        str(results),
        "--run-id",
        "t",
        "--no-progress",
        *extra,
    ]


def _check_files_intact(run, killed=False):
    """Every result file parses. Right after a kill (`killed`) a writer's temporary
    file may remain, since a kill can land mid-write; once the run has resumed, none may."""
    for dirpath, _, files in os.walk(run):
        for f in files:
            p = os.path.join(dirpath, f)
            if killed and f.endswith(".tmp"):
                continue
            assert ".tmp" not in f, f"temporary file left behind: {p}"
            if f.endswith(".json") or f in ("DONE", "FAILED"):
                with open(p) as fh:
                    json.load(fh)
            if f.endswith(".jsonl"):
                data = open(p, "rb").read()
                assert data.endswith(b"\n"), f"torn last line in {p}"
                read_jsonl(p)


def _check_summary_json(run):
    """summary.json and val_curves.csv hold exactly the DONE results and the
    evaluation records of metrics.jsonl, run by run."""
    s = read_json(str(run / "summary.json"))
    assert s["complete"] is True and s["run_id"] == run.name
    want_curves, dones = [], {}
    for r in s["runs"]:
        done = dones[r["run"]] = read_json(str(run / "steps" / r["run"] / "DONE"))
        assert r["status"] == "done"
        assert (
            r["final_val_loss"],
            r["best_val_loss"],
            r["tokens_seen"],
            r["wall_s"],
            r["params"],
            r["kv_bytes_per_token"],
            r["sparsity"],
            r["target_sparsity"],
            r["test_acc"],
            r["model_class"],
        ) == (
            done["val_loss"],
            done["best_val_loss"],
            done["tokens"],
            done["wall_s"],
            done["params"],
            done.get("kv_bytes_per_token"),
            done.get("sparsity"),
            done.get("target_sparsity"),
            done.get("test_acc"),
            done["model_class"],
        ), r[
            "run"
        ]
        assert r["final_val_loss"] is not None and r["tokens_seen"] == done["tokens"] > 0
        recs = read_jsonl(str(run / "steps" / r["run"] / "metrics.jsonl"))
        evals = [e for e in recs if e["kind"] == "eval"]
        assert evals[-1]["val_loss"] == r["final_val_loss"]
        want_curves += [
            [r["run"], r["step"], str(r["seed"]), str(e["iter"]), str(e["tokens"]), e["val_loss"]]
            for e in evals
        ]
    for st in s["steps"]:
        values = [dones[r["run"]][s["metric"]] for r in s["runs"] if r["step"] == st["step"]]
        assert st["runs_done"] == len(values)
        assert st["mean"] == pytest.approx(sum(values) / len(values))
    with open(run / "val_curves.csv", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == ["run", "step", "seed", "iter", "tokens", "val_loss"]
    assert [row[:5] + [float(row[5])] for row in lines[1:]] == want_curves
    return s


def test_sigkill_mid_step_then_rerun_completes_and_third_run_is_a_noop(tmp_path):
    run = tmp_path / "gpt2_ratio_ablation" / "t"
    metrics = run / "steps" / "step00" / "metrics.jsonl"
    proc = subprocess.Popen(
        _ablation_cmd(tmp_path),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        recs = read_jsonl(str(metrics)) if metrics.exists() else []
        if len([r for r in recs if r.get("kind") == "train"]) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
    os.kill(proc.pid, signal.SIGKILL)  # mid-step: step00 has 3+ of its 6 iterations
    proc.wait()
    assert not (run / "steps" / "step00" / "DONE").exists()
    _check_files_intact(run, killed=True)
    (run / "logs" / ".summary.md.planted.tmp").write_text("half a write")

    out = subprocess.run(
        _ablation_cmd(tmp_path), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resumed from checkpoint" in out.stderr
    _check_files_intact(run)
    for step in ("step00", "step08"):
        done = read_json(str(run / "steps" / step / "DONE"))
        assert done["iters"] == 6 and done["final_train_loss"] < done["first_loss"]
        iters = [
            r["iter"]
            for r in read_jsonl(str(run / "steps" / step / "metrics.jsonl"))
            if r["kind"] == "train"
        ]
        assert iters == list(range(1, 7)), iters  # each iteration exactly once
    summary = (run / "summary.md").read_text()
    assert "| step00 |" in summary and "| step08 |" in summary and "GPT2_MLA" in summary
    for png in ("loss_curves.png", "val_loss.png", "quality_vs_kv_bytes.png"):
        assert (run / "plots" / png).stat().st_size > 10_000
    m = read_json(str(run / "manifest.json"))
    assert m["train"]["effective_batch_tokens"] == 12 * 64
    assert m["train"]["seeds"] == [1337]
    assert m["config"]["profile"]["name"] == "cpu" and m["versions"]["torch"]
    assert len(m["invocations"]) == 2
    assert m["command"].startswith("bazel run //experiments:gpt2_ratio_ablation -- --steps 0,8")
    s = _check_summary_json(run)
    assert [(r["run"], r["seed"]) for r in s["runs"]] == [("step00", 1337), ("step08", 1337)]
    assert [st["vs_reference"] for st in s["steps"]] == ["reference", "not resolved"]

    before = metrics.stat().st_mtime_ns
    again = subprocess.run(
        _ablation_cmd(tmp_path), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "nothing to train" in again.stderr
    assert metrics.stat().st_mtime_ns == before


def test_bad_profile_or_step_lists_the_valid_ones(capsys):
    assert main(RATIO, ["--profile", "tpu"]) == 2
    assert "valid profiles: cpu, w7900, a10g-x4, h100, b200-x4" in capsys.readouterr().err
    assert main(RATIO, ["--steps", "0,19"]) == 2
    assert "valid steps: 0, 1, 2" in capsys.readouterr().err
    assert main(VARIANTS, ["--steps", "B,XYZ"]) == 2
    assert "valid steps: B, RA, RALEARN, MLA" in capsys.readouterr().err


def test_every_step_reaches_its_model_and_gpu_profiles_train_124m():
    cpu = resolve("cpu")
    chars = open_dataset(cpu.dataset).meta["vocab_size"]  # the char dataset's own vocabulary
    seen = set()
    for sid in registry.step_ids():
        st = registry.step(sid)
        cfg = step_config(st, cpu)
        assert cfg.vocab_size == chars and cfg.block_size == cpu.block_size
        seen.add((st.class_name, cfg, json.dumps(st.pruning, sort_keys=True)))
    assert len(seen) == len(registry.step_ids())  # no two steps train the same thing
    for p in PROFILES.values():
        if p.device == "cuda":
            cfg = step_config(registry.step(0), p)
            assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size) == (12, 12, 768, 1024)
            assert cfg.vocab_size == 50304  # GPT-2's, padded
    opts = RunOptions.for_profile(resolve("cpu", iters=100), seed=0)
    b = build_gpt2_step(registry.step(1), opts, "cpu")
    assert type(b.optimizer).__name__ == "AdamWPrune"
    assert b.info["pruning"]["target"] == 0.5 and b.info["pruning"]["ramp_end"] <= 100
    mla = build_gpt2_step(registry.step(8), RunOptions.for_profile(cpu, seed=0), "cpu")
    base = build_gpt2_step(registry.step(0), RunOptions.for_profile(cpu, seed=0), "cpu")
    assert mla.info["kv_bytes_per_token"] < base.info["kv_bytes_per_token"] / 2


class _NaNModel(BigramLM):
    def forward(self, idx, targets=None):
        logits, loss = super().forward(idx, targets)
        return logits, loss * float("nan")


def _spec(name, nan):
    def build(device):
        model = _NaNModel(dim=8) if nan else BigramLM(dim=8)
        cfg = TrainConfig(
            max_iters=4,
            batch_size=2,
            eval_interval=4,
            eval_iters=1,
            progress=False,
            tokens_per_sample=8,
        )
        g_x = torch.randint(0, 50257, (64, 9))
        return runner.StepBuild(
            model=model,
            optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
            get_batch=lambda split, g: (g_x[:2, :8], g_x[:2, 1:]),
            train_cfg=cfg,
        )

    return runner.StepSpec(name=name, label=name, build=build)


@pytest.mark.parametrize("policy", ["continue", "stop"])
def test_failed_step_is_recorded_and_policy_applies(tmp_path, policy):
    import argparse

    ap = argparse.ArgumentParser()
    options.add_common_args(ap)
    args = ap.parse_args(
        ["--results-dir", str(tmp_path), "--run-id", "r", "--on-failure", policy, "--no-progress"]
    )
    opts = options.resolve(args, ["a", "b", "c"])
    specs = [_spec("a", False), _spec("b", True), _spec("c", False)]
    rc = runner.run_steps("failing", specs, opts, {"x": 1}, {})
    run = tmp_path / "failing" / "r"
    assert rc == 1
    assert (run / "steps" / "a" / "DONE").exists()
    fail = read_json(str(run / "steps" / "b" / "FAILED"))
    assert fail["reason"] == "nan_loss" and "nan" in fail["message"]
    assert (run / "steps" / "c" / "DONE").exists() == (policy == "continue")
    assert "FAILED: nan_loss" in (run / "summary.md").read_text()
    s = read_json(str(run / "summary.json"))
    status = {r["run"]: r["status"] for r in s["runs"]}
    assert status == {
        "a": "done",
        "b": "failed",
        "c": "done" if policy == "continue" else "pending",
    }
    assert s["complete"] is False  # a FAILED run (and, with stop, a pending one)
    assert s["runs"][1]["failure"] == "nan_loss" and s["runs"][1]["final_val_loss"] is None
    # A run still pending alone keeps the run incomplete.
    summary.write_summary(RunDir(str(run)), "failing", [specs[0], _spec("d", False)], {"x": 1})
    s = read_json(str(run / "summary.json"))
    assert [r["status"] for r in s["runs"]] == ["done", "pending"] and s["complete"] is False


def test_pruning_matrix_reaches_its_target_sparsities(tmp_path):
    rc = pruning_matrix.main(
        [
            "--models",
            "lenet5",
            "--optimizers",
            "adamw",
            "--methods",
            "magnitude,movement,bitter7",
            "--sparsities",
            "0.7",
            "--iters",
            "40",
            "--results-dir",
            str(tmp_path),
            "--run-id",
            "m",
            "--no-progress",
        ]
    )
    assert rc == 0
    run = tmp_path / "pruning_matrix" / "m"
    for method in ("magnitude", "movement", "bitter7"):
        res = read_json(str(run / "steps" / f"lenet5-adamw-{method}-70" / "DONE"))
        assert res["sparsity"] >= 0.695 and res["target_reached"]
        assert res["final_train_loss"] < res["first_loss"]
        assert res["test_acc"] > 0.3  # ten classes: chance is 0.1
    summary = (run / "summary.md").read_text()
    assert "test accuracy (mean ± std)" in summary and "sparsity" in summary
    assert "ppl" not in summary and "perplexity" not in summary  # a classifier has none
    assert "| pass | lenet5-adamw-bitter7-70 | sparsity |" in summary
    s = _check_summary_json(run)
    assert s["metric"] == "test_acc" and s["lower_is_better"] is False
    assert all(r["sparsity"] >= 0.695 and r["target_sparsity"] == 0.7 for r in s["runs"])
    assert (run / "plots" / "test_acc.png").exists() and not (
        run / "plots" / "val_ppl.png"
    ).exists()
    assert pruning_matrix.main(["--methods", "bitter7", "--optimizers", "sgd", "--list"]) == 0
    assert pruning_matrix.main(["--methods", "prune_all"]) == 2


def test_kvsplice_cache_matches_theory(tmp_path, capsys):
    rc = kvsplice_cache.main(
        [
            "--preset",
            "tiny",
            "--tokens",
            "16,32,64",
            "--results-dir",
            str(tmp_path),
            "--run-id",
            "k",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    data = read_json(str(tmp_path / "kvsplice_cache" / "k" / "json" / "cache.json"))
    per = {r["class"]: r["rows"][-1] for r in data["results"]}
    assert per["GPT2_MLA_KV"]["shapes"]["z"] == [1, 64, 128]
    assert per["GPT2_MLA"]["shapes"]["c"] == [1, 64, 256]
    assert per["GPT2"]["measured_bytes"] / per["GPT2_MLA_KV"]["measured_bytes"] == pytest.approx(
        2 * 512 / 128
    )
    assert (tmp_path / "kvsplice_cache" / "k" / "plots" / "cache_bytes.png").exists()
    run = tmp_path / "kvsplice_cache" / "k"
    manifest = read_json(str(run / "manifest.json"))
    assert missing_fields(manifest) == [] and manifest["experiment"] == "kvsplice_cache"
    assert manifest["command"] == (
        f"bazel run //experiments:kvsplice_cache -- --preset tiny --tokens 16,32,64 "
        f"--results-dir {tmp_path} --run-id k"
    )
    s = read_json(str(run / "summary.json"))
    assert s["complete"] is True and s["experiment"] == "kvsplice_cache"
    assert s["metric"] == "bytes_per_token" and s["lower_is_better"] is True
    keys = ("tokens", "measured_bytes", "theory_bytes", "bytes_per_token", "rel_error")
    want = [
        (r["class"], r["class"], None, "done", r["params"]) + tuple(row[k] for k in keys)
        for r in data["results"]
        for row in r["rows"]
    ]
    got = [(r["run"], r["step"], r["seed"], r["status"], r["params"]) for r in s["runs"]]
    assert [g + tuple(r[k] for k in keys) for g, r in zip(got, s["runs"], strict=True)] == want
    assert [st["step"] for st in s["steps"]] == list(kvsplice_cache.CLASSES)
    cache_checks = [c for c in s["checks"] if c["name"] == "cache vs theory"]
    assert [c["subject"] for c in cache_checks] == list(kvsplice_cache.CLASSES)
    assert all(c["ok"] for c in s["checks"])
    assert not (run / "val_curves.csv").exists()


def test_kvsplice_transform_learns_in_training(tmp_path):
    rc = main(
        VARIANTS,
        [
            "--steps",
            "MLAKV",
            "--iters",
            "6",
            "--results-dir",
            str(tmp_path),
            "--run-id",
            "v",
            "--no-progress",
        ],
    )
    assert rc == 0
    res = read_json(str(tmp_path / "gpt2_variants" / "v" / "steps" / "MLAKV" / "DONE"))
    assert res["model_class"] == "GPT2_MLA_KV"
    found = {c["name"]: c for c in res["checks"]}
    assert found["KVSplice scale and shift moved"]["ok"], found
    assert found["params"]["ok"] and found["KV bytes"]["ok"] and found["MLP width"]["ok"]


def test_bench_decode_cpu_smoke_writes_a_run_directory(tmp_path, capsys):
    argv = ["--cpu-smoke", "--batches", "1", "2", "--contexts", "8", "33", "--out", str(tmp_path)]
    assert bench_decode.main(argv) == 0
    assert "CPU SMOKE" in capsys.readouterr().out
    result = read_json(str(tmp_path / "results.json"))
    assert "CPU SMOKE" in result["device"] and len(result["rows"]) == 2 * 2 * 2
    assert (tmp_path / "results.csv").read_text().startswith("model,batch,context,")
    assert (tmp_path / "decode_bandwidth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = read_json(str(tmp_path / "manifest.json"))
    assert missing_fields(manifest) == [] and manifest["experiment"] == "bench_decode"
    assert manifest["command"] == "bazel run //experiments:bench_decode -- " + " ".join(argv)
    s = read_json(str(tmp_path / "summary.json"))
    assert s["measured"] is False and s["complete"] is True
    assert s["device"] == result["device"] and s["copy_gbps"] is None  # NaN: nothing measured
    assert s["metric"] == "contig_gbps" and s["lower_is_better"] is False
    assert s["runs"] == result["rows"] and s["run_id"] == tmp_path.name
    assert not (tmp_path / "val_curves.csv").exists()


def test_bench_decode_default_run_directory_is_under_results(tmp_path, monkeypatch):
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(tmp_path))
    argv = ["--cpu-smoke", "--models", "gpt2", "--batches", "1", "--contexts", "8"]
    assert bench_decode.main(argv) == 0
    (run,) = (tmp_path / "results" / "bench_decode").iterdir()
    assert run.name.endswith("Z-cpu") and (run / "summary.json").exists()
    assert read_json(str(run / "manifest.json"))["run_id"] == run.name
