"""The kinds of run at tiny budgets: each step reaches its model, the pruning cells their
sparsities, the KV cache its theory, KVSplice learns, the decode smoke run measures nothing.

Each test drives a kind the way a run's action does: a spec written by
experiments/testing.py (the one experiments/defs.bzl would write), trained or
measured by experiments/run_step.py or the kind's own entry, and reported by
experiments/report.py. Resuming, SIGKILL and the Bazel-level flow have tests
of their own.
"""

import csv
import json

import pytest
import torch

from data.text import open_dataset
from experiments import (
    decode_step,
    gpt2_step,
    install,
    kv_cache_step,
    profiles,
    report,
    run_step,
    testing,
    vision_step,
)
from experiments.ablations import registry
from experiments.bigram import BigramLM
from experiments.record import RunResult
from experiments.results import dumps, read_json, read_jsonl
from experiments.step_build import StepBuild
from experiments.trainer import TrainConfig
from models.gpt2 import zoo
from models.gpt2.config import GPT2Config


@pytest.fixture(autouse=True)
def _keep_threads():
    """A run on the cpu profile sets torch's threads to 1; later tests get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _run(tmp_path, experiment, step, **kwargs):
    """One run through experiments/run_step.py, as its action runs it; its result."""
    spec = testing.write_run_spec(tmp_path / step / "spec.json", experiment, step, **kwargs)
    inputs = testing.write_inputs(tmp_path / step / "inputs.txt", [tmp_path / step / "spec.json"])
    out = tmp_path / step / "out"
    out.mkdir()
    argv = ["--spec", str(tmp_path / step / "spec.json"), "--inputs", inputs]
    assert run_step.main(argv + ["--out", str(out), "--store", str(tmp_path / "store")]) == 0
    assert not list((tmp_path / "store").glob("*/ckpt.pt"))  # removed once written
    result = RunResult.from_dict(read_json(str(out / "result.json")))
    assert result.run == spec.run and result.inputs_sha256
    return out, result


def _reported(tmp_path, outs, **kwargs):
    """The report over runs' outputs (result.json, metrics.jsonl): its directory."""
    results = [RunResult.from_dict(read_json(str(o / "result.json"))) for o in outs]
    metrics = {
        r.run: read_jsonl(str(o / "metrics.jsonl")) for r, o in zip(results, outs, strict=True)
    }
    path = testing.write_experiment(tmp_path / "records", results, metrics, **kwargs)
    out = tmp_path / "report"
    report.write(report.load(path), str(out))
    return out


def _check_summary_json(out, outs):
    """summary.json and val_curves.csv hold exactly the results and the evaluation
    records of metrics.jsonl, run by run."""
    s = read_json(str(out / "summary.json"))
    assert s["complete"] is True
    want_curves, values = [], {}
    for r, o in zip(s["runs"], outs, strict=True):
        res = read_json(str(o / "result.json"))
        v = values[r["run"]] = res["values"]
        assert r["run"] == res["run"] and r["status"] == "done"
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
            v["val_loss"],
            v["best_val_loss"],
            v["tokens"],
            v["wall_s"],
            v["params"],
            v.get("kv_bytes_per_token"),
            v.get("sparsity"),
            v.get("target_sparsity"),
            v.get("test_acc"),
            v["model_class"],
        ), r[
            "run"
        ]
        assert r["final_val_loss"] is not None and r["tokens_seen"] > 0
        evals = [e for e in read_jsonl(str(o / "metrics.jsonl")) if e["kind"] == "eval"]
        assert evals[-1]["val_loss"] == r["final_val_loss"]
        want_curves += [
            [r["run"], r["step"], str(r["seed"]), str(e["iter"]), str(e["tokens"]), e["val_loss"]]
            for e in evals
        ]
    for st in s["steps"]:
        done = [values[r["run"]][s["metric"]] for r in s["runs"] if r["step"] == st["step"]]
        assert st["runs_done"] == len(done)
        assert st["mean"] == pytest.approx(sum(done) / len(done))
    with open(out / "val_curves.csv", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == ["run", "step", "seed", "iter", "tokens", "val_loss"]
    assert [row[:5] + [float(row[5])] for row in lines[1:]] == want_curves
    return s


def test_every_step_reaches_its_model_and_gpu_profiles_train_124m(tmp_path):
    cpu = profiles.resolve("cpu")
    chars = open_dataset(cpu.dataset).meta["vocab_size"]  # the char dataset's own vocabulary
    assert gpt2_step.model_vocab_size(cpu.dataset, {"vocab_size": chars}) == chars
    seen = set()
    for sid in registry.step_ids():
        st = gpt2_step.step_of(testing.run_spec("gpt2_ratio_ablation", str(sid))["declaration"])
        assert st == registry.step(sid)  # the run's declaration is the registry's step
        cfg = gpt2_step.step_config(st, cpu, chars)
        assert cfg.vocab_size == chars and cfg.block_size == cpu.block_size
        seen.add((st.class_name, cfg, json.dumps(st.pruning, sort_keys=True)))
    assert len(seen) == len(registry.step_ids())  # no two steps train the same thing
    for p in profiles.declared().values():
        if p.device == "cuda":
            vocab = gpt2_step.model_vocab_size(p.dataset, None)
            cfg = gpt2_step.step_config(registry.step(0), p, vocab)
            assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size) == (12, 12, 768, 1024)
            assert vocab == cfg.vocab_size == 50304  # GPT-2's, padded
            with pytest.raises(ValueError, match=f"vocab_size 50304 != the {p.dataset} models'"):
                gpt2_step.step_config(registry.step(0), p, chars)

    def built(step, iters=None):
        spec = testing.write_run_spec(tmp_path / f"{step}.json", "gpt2_ratio_ablation", step)
        profile = testing.profile_of(spec).overridden(iters)
        return gpt2_step.build(spec, profile, "cpu", None)

    pruned = built("1", iters=100)
    assert type(pruned.optimizer).__name__ == "AdamWPrune"
    assert pruned.built["pruning"]["target"] == 0.5 and pruned.built["pruning"]["ramp_end"] <= 100
    mla, base = built("8"), built("0")
    assert mla.built["model_class"] == "GPT2_MLA" and base.built["model_class"] == "GPT2"
    assert mla.values["kv_bytes_per_token"] < base.values["kv_bytes_per_token"] / 2


def test_labels_state_the_size_each_profile_builds(tmp_path):
    """Step 0's doc says MLP 3072 (GPT-2 124M); on the cpu profile it builds 512."""

    def label(step, profile):
        spec = testing.write_run_spec(
            tmp_path / f"{step}-{profile}.json", "gpt2_ratio_ablation", step, profile=profile
        )
        prof = testing.profile_of(spec)
        st = gpt2_step.step_of(spec.declaration)
        vocab = gpt2_step.model_vocab_size(prof.dataset, {"vocab_size": 84})
        cfg = gpt2_step.step_config(st, prof, vocab)
        return gpt2_step.size_label(st, cfg, gpt2_step.method_of(st.pruning)[0], 0.5)

    assert "MLP 3072" in registry.step(0).doc
    assert label("0", "cpu") == "B: MLP 512 (ratio 4), adamwspam"
    assert label("0", "h100") == "B: MLP 3072 (ratio 4), adamwspam"
    assert label("1", "cpu") == "B: MLP 512 (ratio 4), adamwspam, bitter7 50%"
    assert label("16", "cpu") == (
        "RAMLA: MLP 320 (ratio 2.667), attention gate, cross-token MLP, RA alpha 0.3, band 8, "
        "latent 32, RA-CT topk, k 8, alpha 0.2, on the output, adamwspam"
    )


PRUNING_METHODS = ("none", "magnitude", "movement", "bitter7", "bitter8", "bitter9")


def _hyperparameters(opt):
    base = getattr(opt, "base", opt)
    groups = [{k: g[k] for k in ("lr", "weight_decay", "betas")} for g in base.param_groups]
    pruner = getattr(opt, "pruner", None)
    sched = None if pruner is None else (pruner.target, pruner.warmup, pruner.ramp_end)
    return type(base).__name__, groups, sched, getattr(pruner, "frequency", None)


def test_gpt2_pruning_builds_every_method_from_one_schedule(tmp_path):
    names = [s["name"] for s in testing.steps("gpt2_pruning")]
    assert names == [f"{o}-{m}" for o in ("adamw", "adamwspam") for m in PRUNING_METHODS]
    for name in names:  # on a GPU profile: GPT-2 124M on FineWebEdu
        spec = testing.run_spec("gpt2_pruning", name, profile="h100")
        st = gpt2_step.step_of(spec["declaration"])
        cfg = gpt2_step.step_config(st, profiles.resolve("h100"), 50304)
        assert (st.class_name, cfg.n_layer, cfg.n_embd, cfg.mlp_dim) == ("GPT2", 12, 768, 3072)
    for opt in ("adamw", "adamwspam"):
        built = {}
        for method in PRUNING_METHODS:
            spec = testing.write_run_spec(
                tmp_path / f"{opt}-{method}.json", "gpt2_pruning", f"{opt}-{method}"
            )
            b = gpt2_step.build(spec, testing.profile_of(spec), "cpu", None)
            assert b.built["method"] == method and b.built["optimizer"] == opt
            built[method] = _hyperparameters(b.optimizer)
        assert len({repr(h[:2]) for h in built.values()}) == 1  # one base, the same groups
        # The RATIO schedule (1000, 3000, every 50 of 10,400) scaled to 800 iterations.
        assert {h[2:] for m, h in built.items() if m != "none"} == {((0.5, 77, 231), 4)}
        assert built["none"][2] is None


def test_a_pruned_gpt2_reports_sparsity_per_layer_type(tmp_path):
    out, res = _run(tmp_path, "gpt2_pruning", "adamw-movement", iters=20)
    v = res.values
    assert res.status == "done" and res.built["pruning"]["method"] == "movement"
    assert abs(v["sparsity"] - 0.5) <= 0.01 and v["target_sparsity"] == 0.5
    # Counted by hand from the saved weights: the matrices of attn, of mlp, and the head.
    state = torch.load(out / "model.pt", weights_only=True)
    parts = {"attention": ".attn.", "mlp": ".mlp.", "head": "lm_head."}
    counted = {}
    for t, part in parts.items():
        ws = [w for k, w in state.items() if part in k and k.endswith("weight") and w.dim() == 2]
        counted[t] = (sum(int((w == 0).sum()) for w in ws), sum(w.numel() for w in ws))
        assert v[f"sparsity_{t}"] == counted[t][0] / counted[t][1], t
    zeros, total = (sum(c[i] for c in counted.values()) for i in (0, 1))
    assert zeros / total == pytest.approx(v["sparsity"], abs=1e-12)  # the types are the whole
    assert len({round(v[f"sparsity_{t}"], 3) for t in parts}) == 3  # pruned unevenly
    assert {c["name"]: c["ok"] for c in res.checks}["sparsity"] is True
    assert res.built["label"] == "B: MLP 512 (ratio 4), adamw, movement 50%"
    rep = _reported(tmp_path, [out], report="language_pruning", experiment="gpt2_pruning")
    md = (rep / "summary.md").read_text()
    assert "| attention | MLP | head |" in md.split("## Runs")[1]
    row = read_json(str(rep / "summary.json"))["runs"][0]
    assert (row["sparsity_attention"], row["val_ppl"]) == (v["sparsity_attention"], v["val_ppl"])


CELLS = ("magnitude", "movement", "bitter7")


def test_pruning_matrix_cells_reach_their_target_sparsities(tmp_path):
    outs = []
    for method in CELLS:
        out, res = _run(tmp_path, "pruning_matrix", f"lenet5-adamw-{method}-70", iters=40)
        outs.append(out)
        v = res.values
        assert res.status == "done" and v["iters"] == 40
        assert v["sparsity"] >= 0.695 and v["target_reached"] and v["target_sparsity"] == 0.7
        assert v["final_train_loss"] < v["first_loss"]
        assert v["test_acc"] > 0.3  # ten classes: chance is 0.1
        assert [(c["name"], c["ok"]) for c in res.checks] == [("sparsity", True)]
        assert res.built["method"] == method and res.built["dataset"] == "digits"
    out = _reported(tmp_path, outs, report="classifier", experiment="pruning_matrix")
    md = (out / "summary.md").read_text()
    assert "test accuracy (mean ± std)" in md and "sparsity" in md
    assert "ppl" not in md and "perplexity" not in md  # a classifier has none
    assert "| pass | lenet5-adamw-bitter7-70-s1337 | sparsity |" in md
    s = _check_summary_json(out, outs)
    assert s["metric"] == "test_acc" and s["lower_is_better"] is False
    assert all(r["sparsity"] >= 0.695 and r["target_sparsity"] == 0.7 for r in s["runs"])
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {"test_acc.png", "accuracy_vs_sparsity.png"} <= plots and "val_ppl.png" not in plots


class _NaN(BigramLM):
    def forward(self, idx, targets=None):
        logits, loss = super().forward(idx, targets)
        return logits, loss * float("nan")


def test_a_nan_loss_or_a_bad_declaration_is_a_recorded_result(tmp_path, monkeypatch):
    """A failure the same inputs repeat is the run's result (exit 0), not a failed action."""
    data = torch.randint(0, 16, (2, 9))

    def diverging(spec, profile, device, data_root):
        model = _NaN(vocab=16, dim=4)
        cfg = TrainConfig(max_iters=4, batch_size=2, eval_iters=1, progress=False)
        return StepBuild(
            model=model,
            optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
            get_batch=lambda split, g: (data[:, :8], data[:, 1:]),
            train_cfg=cfg,
            built={"model_class": "BigramLM"},
        )

    with monkeypatch.context() as m:
        m.setattr(vision_step, "build", diverging)
        nan_out, nan = _run(tmp_path, "pruning_matrix", "lenet5-adamw-none")
    assert nan.status == "failed" and nan.failure["reason"] == "nan_loss"
    assert "training loss is nan at iter 0" in nan.failure["message"]
    assert set(nan.files) == {"metrics.jsonl", "log.txt", "model.pt"}
    cell = "lenet5-adamw-magnitude-50"
    unknown = dict(testing.run_spec("pruning_matrix", cell)["declaration"], method="prune_all")
    _, bad = _run(tmp_path, "pruning_matrix", cell, declaration=unknown)
    assert bad.status == "failed" and bad.failure["reason"] == "error"
    assert "prune_all" in bad.failure["message"]
    done = testing.run_result("lenet5-adamw-bitter7-70-s1337", values={"test_acc": 0.9})
    path = testing.write_experiment(tmp_path / "records", [done, nan, bad], report="classifier")
    out = tmp_path / "report"
    report.write(report.load(path), str(out))
    s = read_json(str(out / "summary.json"))
    assert s["complete"] is False  # a failed run keeps the experiment incomplete
    assert [(r["status"], r["failure"]) for r in s["runs"]] == [
        ("done", None),
        ("failed", "nan_loss"),
        ("failed", "error"),
    ]
    assert s["runs"][1]["final_val_loss"] is None and s["runs"][1]["test_acc"] is None
    trained = [(c["subject"], c["ok"]) for c in s["checks"] if c["name"] == "trained"]
    assert trained == [(nan.run, False), (bad.run, False)]
    assert "FAILED: nan_loss" in (out / "summary.md").read_text()


def test_kv_cache_matches_theory(tmp_path):
    tokens = [16, 32, 64]
    measured = {}
    for cls in ("GPT2", "GPT2_MLA", "GPT2_MLA_KV", "GPT2_MLA_KV2"):
        decl = testing.run_spec("kvsplice_cache", cls)["declaration"]
        spec = testing.write_run_spec(
            tmp_path / f"{cls}.json",
            "kvsplice_cache",
            cls,
            declaration=dict(decl, preset="tiny", tokens=tokens),
        )
        values, found = kv_cache_step.measure(spec, testing.profile_of(spec), "cpu", None, print)
        assert [c["name"] for c in found if not c["ok"]] == [], found
        measured[cls] = testing.run_result(cls, seed=None, values=values, checks=found)
    per = {cls: r.values["rows"][-1] for cls, r in measured.items()}
    assert per["GPT2_MLA_KV"]["shapes"]["z"] == [1, 64, 128]
    assert per["GPT2_MLA"]["shapes"]["c"] == [1, 64, 256]
    assert per["GPT2_MLA_KV2"]["shapes"] == {"zk": [1, 64, 128], "zv": [1, 64, 128]}
    assert per["GPT2"]["measured_bytes"] / per["GPT2_MLA_KV"]["measured_bytes"] == pytest.approx(
        2 * 512 / 128
    )
    path = testing.write_experiment(
        tmp_path / "records",
        list(measured.values()),
        report="kv_cache",
        experiment="kvsplice_cache",
    )
    out = tmp_path / "report"
    report.write(report.load(path), str(out))
    s = read_json(str(out / "summary.json"))
    assert s["complete"] is True and s["experiment"] == "kvsplice_cache"
    assert s["metric"] == "bytes_per_token" and s["lower_is_better"] is True
    keys = ("tokens", "measured_bytes", "theory_bytes", "bytes_per_token", "rel_error")
    want = [
        (cls, cls, None, "done", r.values["params"]) + tuple(row[k] for k in keys)
        for cls, r in measured.items()
        for row in r.values["rows"]
    ]
    got = [(r["run"], r["step"], r["seed"], r["status"], r["params"]) for r in s["runs"]]
    assert [g + tuple(r[k] for k in keys) for g, r in zip(got, s["runs"], strict=True)] == want
    assert [st["step"] for st in s["steps"]] == list(measured)
    cache_checks = [c for c in s["checks"] if c["name"] == "cache vs theory"]
    assert [c["subject"] for c in cache_checks] == list(measured)
    assert all(c["ok"] for c in s["checks"])
    assert (out / "plots" / "cache_bytes.png").exists() and not (out / "val_curves.csv").exists()


def test_kvsplice_transform_learns_in_training(tmp_path):
    out, res = _run(tmp_path, "gpt2_variants", "MLAKV", iters=6)
    assert res.status == "done" and res.values["model_class"] == "GPT2_MLA_KV"
    found = {c["name"]: c for c in res.checks}
    assert found["KVSplice scale and shift moved"]["ok"], found
    assert found["params"]["ok"] and found["KV bytes"]["ok"] and found["MLP width"]["ok"]
    # The final weights are kept: the trained model loads without a retrain.
    model = zoo.get_class("GPT2_MLA_KV")(GPT2Config(**res.built["model_config"]))
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    assert res.files["model.pt"]["bytes"] == (out / "model.pt").stat().st_size
    # The run's sampler: its CPU means in every logged record, its backend in the result.
    train = [r for r in read_jsonl(str(out / "metrics.jsonl")) if r["kind"] == "train"]
    assert len(train) == 6 and all(r["cpu/memory_used_avg_gb"] > 0 for r in train)
    assert res.provenance["telemetry"] == "cpu"


def test_bench_decode_cpu_smoke_says_measured_false(tmp_path):
    args = ["--cpu-smoke", "--batches", "1", "2", "--contexts", "8", "33"]
    spec = testing.write_run_spec(
        tmp_path / "spec.json", "bench_decode", "decode", declaration={"args": args}
    )
    values, found = decode_step.measure(spec, testing.profile_of(spec), "cpu", None, print)
    values = json.loads(dumps(values))  # as result.json records them: NaN is null
    assert values["measured"] is False and found == []
    assert "CPU SMOKE" in values["device"] and len(values["rows"]) == 2 * 2 * 2
    res = testing.run_result("decode", seed=None, values=values)
    path = testing.write_experiment(
        tmp_path / "records", [res], report="decode", experiment="bench_decode"
    )
    out = tmp_path / "report"
    report.write(report.load(path), str(out))
    assert "CPU SMOKE RUN: nothing was measured." in (out / "summary.md").read_text()
    result = read_json(str(out / "results.json"))
    assert result["device"] == values["device"] and result["rows"] == values["rows"]
    assert (out / "results.csv").read_text().startswith("model,batch,context,")
    assert (out / "plots" / "decode_bandwidth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    s = read_json(str(out / "summary.json"))
    assert s["extra"]["measured"] is False and s["complete"] is True
    assert s["extra"]["device"] == values["device"]
    assert s["extra"]["copy_gbps"] is None  # NaN: nothing measured
    assert s["metric"] == "contig_gbps" and s["lower_is_better"] is False
    run_keys = {"run": "decode", "step": "decode", "seed": None, "status": "done"}
    assert s["runs"] == [
        dict(run_keys, failure=None, label="decode", **row) for row in values["rows"]
    ]
    assert not (out / "val_curves.csv").exists()


def test_a_run_setting_after_the_double_dash_says_where_it_goes(tmp_path, capsys):
    target = "//experiments:gpt2_ratio_ablation"
    assert install.refuse_old_flags(["--steps=0,8"], target) == (
        f"--steps is a build setting now: give it before `--`, as in `bazel run {target} "
        "--steps=0,8` (experiments/README.md)"
    )
    assert install.refuse_old_flags(["--on-failure", "stop"], target).startswith(
        "--on-failure is gone: a failed run is recorded and the build goes on"
    )
    assert install.refuse_old_flags(["--run-id", "x", "--strict"], target) is None
    path = testing.write_experiment(tmp_path, [testing.run_result("step00-s1337")])
    argv = ["--experiment", path, "--report", str(tmp_path / "none"), "--profile", "h100"]
    assert install.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "knlp: --profile is a build setting now: give it before `--`, as in "
        "`bazel run //experiments:tiny --profile=h100` (experiments/README.md)"
    )
    argv[-2:] = ["--colour", "blue"]
    assert install.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "knlp: unrecognized arguments: --colour blue; accepted: --results-dir, --run-id, --strict"
    )
