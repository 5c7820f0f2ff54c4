"""Research checks and significance: each planted defect is reported as failed."""

import argparse

import pytest
import torch

from experiments import checks, kvsplice_cache, options, runner
from experiments.ablations import registry
from experiments.ddp_check import BigramLM
from experiments.results import read_json
from experiments.trainer import TrainConfig
from models.gpt2 import zoo

TRUNK = {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 32, "vocab_size": 40}


def _config(step_id):
    return registry.config(registry.step(step_id), TRUNK)


def _train(model, iters=5, lr=1e-2):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(iters):
        x = torch.randint(TRUNK["vocab_size"], (4, 16), generator=g)
        _, loss = model(x, x)[:2]
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_significance_marks_only_beyond_twice_the_pooled_std():
    ref = [2.00, 2.01, 1.99]
    assert checks.compare([1.90, 1.91, 1.89], ref) == "better"
    assert checks.compare([2.10, 2.11, 2.09], ref) == "worse"
    assert checks.compare([2.005, 1.995, 2.015], ref) == "not resolved"  # inside the noise
    assert checks.compare([1.90], ref) == "not resolved"  # one seed: no spread to judge by
    # Higher is better for accuracy: the same numbers mark the other way.
    assert checks.compare([0.90, 0.91, 0.89], [0.80, 0.81, 0.79], False) == "better"
    assert checks.pooled_std([1.0, 3.0], [2.0, 2.0]) == pytest.approx(1.0)


def test_params_and_mlp_width_catch_a_step_built_without_its_options():
    cfg = _config(2)  # MLP expansion 5.0
    cls = registry.step(2).class_name
    right = zoo.get_class(cls)(cfg)
    assert checks.check_params(cls, cfg, right.get_num_params()).ok
    assert checks.check_mlp_width(cls, cfg, checks.measured_mlp_widths(right)).ok
    dropped = zoo.get_class(cls)(cfg.with_options(mlp_ratio=4.0))  # the option never arrived
    assert not checks.check_params(cls, cfg, dropped.get_num_params()).ok
    assert not checks.check_mlp_width(cls, cfg, checks.measured_mlp_widths(dropped)).ok


def test_expected_params_match_every_class_by_design():
    for prefix, v in registry.get().variants.items():
        st = registry.Step(
            -1, prefix, v["class"], {**registry.get().base["options"], **v["options"]}
        )
        cfg = registry.config(st, TRUNK)
        with torch.device("meta"):
            model = zoo.get_class(v["class"])(cfg)
        assert checks.expected_params(v["class"], cfg) == model.get_num_params(), prefix


def test_kv_bytes_catch_a_cache_that_keeps_the_uncompressed_latent():
    cfg = _config(8).with_options(kv_ratio=0.5)
    spliced = zoo.get_class("GPT2_MLA_KV")(cfg)
    assert checks.check_kv_bytes(
        "GPT2_MLA_KV", cfg, checks.attention_cache_bytes_per_token(spliced)
    ).ok
    plain = zoo.get_class("GPT2_MLA")(cfg)  # caches c, not the compressed z
    measured = checks.attention_cache_bytes_per_token(plain)
    assert not checks.check_kv_bytes("GPT2_MLA_KV", cfg, measured).ok


def test_sparsity_within_one_percent():
    assert checks.check_sparsity(0.5, 0.5).ok
    assert checks.check_sparsity(0.495, 0.5).ok
    assert not checks.check_sparsity(0.48, 0.5).ok
    assert not checks.check_sparsity(0.0, 0.5).ok  # pruning never ran


MECHANISMS = {
    "KVSplice scale and shift": ("GPT2_MLA_KV", {"d_latent": 32}, "s"),
    "RA-CT gate": ("GPT2", {"ract": True}, "scale"),
    "learned RA weight": ("GPT2_RA", {"ra_learned": True}, "ra_logit"),
}


@pytest.mark.parametrize("what", MECHANISMS)
def test_moved_catches_a_frozen_mechanism(what):
    cls, opts, frozen = MECHANISMS[what]
    cfg = registry.config(registry.step(0), TRUNK).with_options(**opts)
    for freeze in (False, True):
        torch.manual_seed(0)
        model = zoo.get_class(cls)(cfg)
        initial = checks.snapshot(model)
        assert what in initial
        if freeze:
            for name, p in model.named_parameters():
                if name.endswith("." + frozen):
                    p.requires_grad_(False)
        _train(model)
        (found,) = [c for c in checks.check_moved(initial, model) if c.name == f"{what} moved"]
        assert found.ok == (not freeze), found


def test_learned_needs_thirty_percent_below_the_unigram_entropy():
    tokens = torch.tensor([0, 1, 2, 3] * 10).numpy()
    assert checks.unigram_entropy(tokens) == pytest.approx(torch.log(torch.tensor(4.0)).item())
    assert checks.check_learned(0.9, 1.386).ok
    assert not checks.check_learned(1.2, 1.386).ok
    assert not checks.check_learned(None, 1.386).ok


def test_kvsplice_quality_against_its_mla_base():
    base = [2.00, 2.01, 1.99]
    assert checks.check_kvsplice_cost([2.01, 2.02, 2.00], base, "MLA").ok
    assert not checks.check_kvsplice_cost([2.10, 2.11, 2.09], base, "MLA").ok  # +5%
    assert checks.check_kvsplice_cost([2.05, 1.90, 2.20], base, "MLA").ok  # inside the noise
    assert checks.kvsplice_base("GPT2_MLA_RA_KV") == "GPT2_MLA_RA"
    assert checks.kvsplice_base("GPT2_MLA_KV2") == "GPT2_MLA"
    assert checks.kvsplice_base("GPT2_MLA_KV2M") is None and checks.kvsplice_base("GPT2") is None


def test_kvsplice_cache_reports_a_wrong_splice_size():
    cfg = kvsplice_cache.config_for("tiny", [16])
    good = kvsplice_cache.measure("GPT2_MLA_KV", [16], "cpu", torch.float32, "tiny")
    assert all(c.ok for c in kvsplice_cache.research_checks([good], cfg))
    bad = dict(good, splice_params=good["splice_params"] - cfg.n_layer * cfg.d_latent)
    found = kvsplice_cache.research_checks([bad], cfg)
    assert [c.name for c in found if not c.ok] == ["KVSplice params"]


def _spec(name, failing):
    def build(device):
        model = BigramLM(vocab=16, dim=4)
        data = torch.randint(0, 16, (4, 9))
        return runner.StepBuild(
            model=model,
            optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
            get_batch=lambda split, g: (data[:, :8], data[:, 1:]),
            train_cfg=TrainConfig(
                max_iters=2, batch_size=4, eval_interval=2, eval_iters=1, progress=False
            ),
            finish=lambda m: {"checks": [checks.Check("planted", not failing, name).to_dict()]},
        )

    return runner.StepSpec(name=name, label=name, build=build)


@pytest.mark.parametrize("strict", [False, True])
def test_failed_check_listed_first_and_strict_exits_nonzero(tmp_path, strict):
    ap = argparse.ArgumentParser()
    options.add_common_args(ap)
    argv = ["--results-dir", str(tmp_path), "--run-id", "r", "--no-progress", "--seeds", "2"]
    opts = options.resolve(ap.parse_args(argv + (["--strict"] if strict else [])), ["a", "b"])
    specs = runner.per_seed(opts, lambda o: [_spec("a", False), _spec("b", True)])
    assert [s.name for s in specs] == ["a-s1337", "b-s1337", "a-s1338", "b-s1338"]
    rc = runner.run_steps("checked", specs, opts, {"x": 1}, {})
    assert rc == (1 if strict else 0)
    summary = (tmp_path / "checked" / "r" / "summary.md").read_text()
    section = summary.split("## Research checks")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    assert rows[0].startswith("| **FAIL** | b-s") and rows[1].startswith("| **FAIL** | b-s")
    assert rows[2].startswith("| pass | a-s")
    assert "2 of 4 checks failed." in section
    assert "| a | a | 2/2 |" in summary and "| b | b | 2/2 |" in summary
    done = read_json(str(tmp_path / "checked" / "r" / "steps" / "b-s1338" / "DONE"))
    assert done["checks"][0]["ok"] is False
