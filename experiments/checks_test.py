"""Research checks: each planted defect is reported as failed.

The checks are computed where their evidence is: the measured ones when a run
finishes (experiments/gpt2_step.py run_checks, measuring with probes.py), the
ones over runs in the report (experiments/summary.py run_checks), the cache
measurement's in kv_cache_step.py; the expected numbers come from the
declaration alone (experiments/checks.py).
"""

import pytest
import torch

from data.stats import unigram_entropy
from experiments import checks, gpt2_step, install, kv_cache_step, probes, report, testing
from experiments.ablations import registry
from experiments.results import read_json
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


def test_kvsplices_noise_is_the_pooled_std():
    assert checks.pooled_std([1.0, 3.0], [2.0, 2.0]) == pytest.approx(1.0)
    assert checks.pooled_std([1.0], [2.0, 2.0]) is None  # one seed: no spread


def test_params_and_mlp_width_catch_a_step_built_without_its_options():
    cfg = _config(2)  # MLP expansion 5.0
    cls = registry.step(2).class_name
    right = zoo.get_class(cls)(cfg)
    assert checks.check_params(cls, cfg, right.get_num_params()).ok
    assert checks.check_mlp_width(cls, cfg, probes.measured_mlp_widths(right)).ok
    dropped = zoo.get_class(cls)(cfg.with_options(mlp_ratio=4.0))  # the option never arrived
    assert not checks.check_params(cls, cfg, dropped.get_num_params()).ok
    assert not checks.check_mlp_width(cls, cfg, probes.measured_mlp_widths(dropped)).ok


def test_expected_params_match_every_class_by_design():
    reg = registry.get()
    for prefix, v in reg.variants.items():
        cfg = registry.config(reg.variant_step(prefix), TRUNK)
        with torch.device("meta"):
            model = zoo.get_class(v["class"])(cfg)
        assert checks.expected_params(v["class"], cfg) == model.get_num_params(), prefix


def test_kv_bytes_catch_a_cache_that_keeps_the_uncompressed_latent():
    cfg = _config(8).with_options(kv_ratio=0.5)
    spliced = zoo.get_class("GPT2_MLA_KV")(cfg)
    measured = probes.cache_bytes_per_token(spliced)["attention"]
    assert checks.check_kv_bytes("GPT2_MLA_KV", cfg, measured).ok
    plain = zoo.get_class("GPT2_MLA")(cfg)  # caches c, not the compressed z
    measured = probes.cache_bytes_per_token(plain)["attention"]
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
        initial = probes.snapshot(model)
        assert what in initial
        if freeze:
            for name, p in model.named_parameters():
                if name.endswith("." + frozen):
                    p.requires_grad_(False)
        _train(model)
        (found,) = [c for c in probes.check_moved(initial, model) if c.name == f"{what} moved"]
        assert found.ok == (not freeze), found


def _failed(found):
    return {c.name for c in found if not c.ok}


def _trained(step, cfg, model_cfg=None, cls=None, freeze=None):
    """A model of `step` (or of class `cls`, at `model_cfg`), snapshotted and trained."""
    torch.manual_seed(0)
    model = zoo.get_class(cls or step.class_name)(model_cfg or cfg)
    initial = probes.snapshot(model)
    for name, p in model.named_parameters():
        if freeze and name.endswith("." + freeze):
            p.requires_grad_(False)
    _train(model)
    return model, initial


def test_a_finished_runs_checks_report_each_planted_defect():
    """gpt2_step.run_checks, as a GPT-2 run computes its checks when it finishes."""
    reg = registry.get()
    kv = reg.variant_step("MLAKV")
    cfg = registry.config(kv, TRUNK)
    model, initial = _trained(kv, cfg)
    right = gpt2_step.run_checks(kv, cfg, model, initial, {})
    names = {c.name for c in right}
    assert names == {"params", "MLP width", "KV bytes", "KVSplice scale and shift moved"}
    assert _failed(right) == set()
    # The step's options never reached the model: a 5.0 expansion built as 4.0.
    wide = registry.step(2)
    wide_cfg = registry.config(wide, TRUNK)
    model, initial = _trained(wide, wide_cfg, wide_cfg.with_options(mlp_ratio=4.0))
    found = gpt2_step.run_checks(wide, wide_cfg, model, initial, {})
    assert _failed(found) == {"params", "MLP width"}
    # The cache keeps the uncompressed latent: KVSplice's step built as plain MLA.
    model, initial = _trained(kv, cfg, cls="GPT2_MLA")
    assert "KV bytes" in _failed(gpt2_step.run_checks(kv, cfg, model, initial, {}))
    # KVSplice's scale never trains.
    model, initial = _trained(kv, cfg, freeze="s")
    found = gpt2_step.run_checks(kv, cfg, model, initial, {})
    assert _failed(found) == {"KVSplice scale and shift moved"}
    # Pruning stopped short of its target.
    pruned = registry.step(1)
    pcfg = registry.config(pruned, TRUNK)
    model, initial = _trained(pruned, pcfg)
    missed = {"sparsity": 0.31, "target_sparsity": 0.5}
    assert _failed(gpt2_step.run_checks(pruned, pcfg, model, initial, missed)) == {"sparsity"}
    reached = {"sparsity": 0.5, "target_sparsity": 0.5}
    assert _failed(gpt2_step.run_checks(pruned, pcfg, model, initial, reached)) == set()


def test_learned_needs_thirty_percent_below_the_unigram_entropy():
    tokens = torch.tensor([0, 1, 2, 3] * 10).numpy()
    assert unigram_entropy(tokens) == pytest.approx(torch.log(torch.tensor(4.0)).item())
    assert checks.check_learned(0.9, 1.386).ok
    assert not checks.check_learned(1.2, 1.386).ok
    assert not checks.check_learned(None, 1.386).ok
    assert not checks.check_learned(float("nan"), 1.386).ok


def test_kvsplice_quality_against_its_mla_base():
    base = [2.00, 2.01, 1.99]
    assert checks.check_kvsplice_cost([2.01, 2.02, 2.00], base, "MLA").ok
    assert not checks.check_kvsplice_cost([2.10, 2.11, 2.09], base, "MLA").ok  # +5%
    assert checks.check_kvsplice_cost([2.05, 1.90, 2.20], base, "MLA").ok  # inside the noise
    assert checks.kvsplice_base("GPT2_MLA_RA_KV") == "GPT2_MLA_RA"
    assert checks.kvsplice_base("GPT2_MLA_KV2") == "GPT2_MLA"
    assert checks.kvsplice_base("GPT2_MLA_KV2M") is None and checks.kvsplice_base("GPT2") is None


def test_kv_cache_measurement_reports_a_wrong_splice_size():
    cfg = kv_cache_step.config_for("tiny", [16])
    good = kv_cache_step.measure_class("GPT2_MLA_KV", [16], "cpu", torch.float32, "tiny")
    assert all(c.ok for c in kv_cache_step.class_checks(good, cfg))
    bad = dict(good, splice_params=good["splice_params"] - cfg.n_layer * cfg.d_latent)
    found = kv_cache_step.class_checks(bad, cfg)
    assert [c.name for c in found if not c.ok] == ["KVSplice params"]


def _report(tmp_path, results, **kwargs):
    """The report of a tiny experiment: its summary.md and summary.json."""
    path = testing.write_experiment(tmp_path / "runs", results, **kwargs)
    out = tmp_path / "report"
    report.write(report.load(path), str(out))
    return path, out, (out / "summary.md").read_text(), read_json(str(out / "summary.json"))


def test_a_costly_kvsplice_fails_its_quality_check_in_the_report(tmp_path):
    runs = []
    for step, cls, losses in (
        ("MLA", "GPT2_MLA", (2.00, 2.01, 1.99)),
        ("MLAKV", "GPT2_MLA_KV", (2.10, 2.11, 2.09)),  # 5% worse than its MLA base
    ):
        for i, loss in enumerate(losses):
            values = {"val_loss": loss, "model_class": cls}
            runs.append(testing.run_result(f"{step}-s{1337 + i}", values=values))
    _, _, md, s = _report(tmp_path, runs, reference="MLA")
    (found,) = [c for c in s["checks"] if c["name"] == "KVSplice quality"]
    assert found["subject"] == "MLAKV" and found["ok"] is False
    assert s["checks"][0] == found  # failing first
    assert "- MLAKV: KVSplice quality: val loss +5.00% vs MLA" in md


def test_the_checks_table_prints_each_check_in_the_given_order():
    found = [
        ("MLA", checks.Check("KV bytes", False, 0.25)),
        ("GPT2", checks.Check("params", True, 1)),
    ]
    assert checks.table(found, "class", lambda d: f"<{d}>") == [
        "| result | class | check | detail |",
        "|---|---|---|---|",
        "| **FAIL** | MLA | KV bytes | <0.25> |",
        "| pass | GPT2 | params | <1> |",
    ]


def test_failed_checks_are_listed_first_and_strict_exits_nonzero(tmp_path, capsys):
    runs = [
        testing.run_result(
            f"{step}-s{seed}",
            seed=seed,
            values={"val_loss": 2.0 if step == "a" else 2.5},  # b did not learn
            checks=[checks.Check("planted", step == "a", step).to_dict()],
        )
        for seed in (1337, 1338)
        for step in ("a", "b")
    ]
    path, out, md, s = _report(tmp_path, runs, entropy=3.0)
    assert [r["run"] for r in s["runs"]] == ["a-s1337", "b-s1337", "a-s1338", "b-s1338"]
    section = md.split("## Research checks")[1].split("## Runs")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    assert all(row.startswith("| **FAIL** | b-s") for row in rows[:4]), rows
    assert all(row.startswith("| pass | a-s") for row in rows[4:]), rows
    assert {row.split(" | ")[2] for row in rows[:4]} == {"planted", "learned"}
    assert "4 of 8 checks failed." in section
    assert md.index("**4 research checks failed:**") < md.index("## Steps")
    assert "| a | a | 2/2 |" in md and "| b | b | 2/2 |" in md
    assert [c["ok"] for c in s["checks"]] == [False] * 4 + [True] * 4
    argv = ["--experiment", path, "--report", str(out), "--results-dir", str(tmp_path / "r")]
    assert install.main(argv) == 0  # reported, not fatal
    assert install.main(argv + ["--strict"]) == 1
    assert "**4 research checks failed:**" in capsys.readouterr().out  # the verdict, printed
