"""Every pruning method on a tiny GPT-2: same hyperparameters, its target, the per-type report."""

import pytest
import torch

from models.gpt2.config import preset
from models.gpt2.gpt2 import GPT2
from pruning import layer_types, methods
from pruning.masks import MovementPruner
from pruning.optimizers import optimizer_step

# A short schedule: rescoring every 4 steps from 8, the target at 24.
SCHEDULE = {"target": 0.5, "warmup": 8, "ramp_end": 24, "frequency": 4}
STEPS = 28
HYPER = dict(lr=3e-3, weight_decay=0.1, betas=(0.9, 0.95))
PRUNED = [m for m in methods.METHODS if m != "none"]


def tiny_gpt2():
    torch.manual_seed(0)
    return GPT2(preset("tiny", n_layer=2, n_head=2, n_embd=64, block_size=16, vocab_size=96))


def train(model, opt, steps=STEPS):
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randint(0, model.config.vocab_size, (4, model.config.block_size + 1), generator=g)
        _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        optimizer_step(opt, model.parameters(), grad_clip=1.0)
        opt.zero_grad(set_to_none=True)


@pytest.mark.parametrize("base", methods.BASES)
@pytest.mark.parametrize("method", PRUNED)
def test_each_method_reaches_its_target_and_the_report_sums_to_it(method, base):
    model = tiny_gpt2()
    opt = methods.build(model, method, base, dict(SCHEDULE), **HYPER)
    train(model, opt)
    report = layer_types.sparsity_by_type(model)
    assert abs(opt.sparsity() - SCHEDULE["target"]) <= 0.01
    assert report["all"]["sparsity"] == pytest.approx(opt.sparsity(), abs=1e-12)
    weighted = sum(report[t]["sparsity"] * report[t]["weights"] for t in layer_types.TYPES)
    assert weighted / report["all"]["weights"] == pytest.approx(report["all"]["sparsity"])
    assert all(report[t]["zeros"] > 0 for t in layer_types.TYPES)  # global: every type pruned


def test_the_dense_reference_prunes_nothing():
    model = tiny_gpt2()
    opt = methods.build(model, "none", "adamw", dict(SCHEDULE), **HYPER)
    assert isinstance(opt, torch.optim.AdamW)
    train(model, opt, steps=3)
    assert layer_types.sparsity_by_type(model)["all"]["zeros"] == 0


def test_the_dense_reference_needs_no_schedule_and_a_pruned_method_does():
    assert methods.plan("none", "adamwspam", None)["pruning"] is None
    assert isinstance(methods.build(tiny_gpt2(), "none", "adamw", None, **HYPER), torch.optim.AdamW)
    with pytest.raises(ValueError, match="schedule None is invalid; accepted: a dict"):
        methods.plan("magnitude", "adamw", None)


def _settings(opt):
    base = getattr(opt, "base", opt)
    groups = [{k: g[k] for k in ("lr", "weight_decay", "betas")} for g in base.param_groups]
    pruner = getattr(opt, "pruner", None)
    sched = (
        None
        if pruner is None
        else (pruner.target, pruner.warmup, pruner.ramp_end, pruner.frequency)
    )
    return type(base).__name__, groups, sched


@pytest.mark.parametrize("base", methods.BASES)
def test_every_method_gets_the_same_hyperparameters_and_schedule(base):
    built = {
        m: _settings(methods.build(tiny_gpt2(), m, base, dict(SCHEDULE), **HYPER))
        for m in methods.METHODS
    }
    assert len({repr(b[:2]) for b in built.values()}) == 1  # one base class, the same groups
    assert {b[2] for m, b in built.items() if m != "none"} == {(0.5, 8, 24, 4)}
    plans = {m: methods.plan(m, base, SCHEDULE) for m in methods.METHODS}
    assert len({p["grad_clip"] for p in plans.values()}) == 1
    assert plans["bitter8"]["optimizer"] == "adamwprune" and plans["bitter8"]["base"] == base
    assert plans["movement"]["pruning"] == {"method": "movement", **SCHEDULE}


def test_movement_mask_is_the_old_trees_formula():
    """The reference: S = W (W - W0), W0 the weights when the pruner is built; the k lowest
    scores over all prunable weights are cut (kthvalue threshold), k = floor(s N)."""
    model = tiny_gpt2()
    opt = methods.build(model, "movement", "adamw", dict(SCHEDULE), **HYPER)
    pruner = opt.pruner
    assert isinstance(pruner, MovementPruner)
    w0 = [w.detach().clone() for w in pruner.weights]  # at build time, before any step
    seen = []
    update = pruner.update_masks

    def spy(s):  # keeps the weights and masks of the first rescoring that prunes
        if s > 0 and not seen:
            seen.append((s, [w.detach().clone() for w in pruner.weights]))
            update(s)
            seen.append([m.clone() for m in pruner.masks])
        else:
            update(s)

    pruner.update_masks = spy
    train(model, opt, steps=SCHEDULE["warmup"] + SCHEDULE["frequency"])
    (s, weights), masks = seen
    assert 0 < s < SCHEDULE["target"]
    scores = [w * (w - w_0) for w, w_0 in zip(weights, w0, strict=True)]
    flat = torch.cat([sc.flatten() for sc in scores])
    k = int(s * flat.numel())
    threshold = torch.kthvalue(flat, k).values
    reference = [sc > threshold for sc in scores]
    assert all(torch.equal(m, r) for m, r in zip(masks, reference, strict=True))


def test_the_report_counts_each_type_of_a_gpt2_by_hand():
    model = tiny_gpt2()
    cfg = model.config
    C, H, L, V = cfg.n_embd, cfg.mlp_dim, cfg.n_layer, cfg.vocab_size
    report = layer_types.sparsity_by_type(model)
    assert report["attention"]["weights"] == L * (C * 3 * C + C * C)
    assert report["mlp"]["weights"] == L * (C * H + H * C)
    assert report["head"]["weights"] == V * C  # lm_head, tied to wte, counted once
    with torch.no_grad():
        model.lm_head.weight[:3].zero_()  # 3 rows of the head, nothing else
    report = layer_types.sparsity_by_type(model)
    assert report["head"]["zeros"] == 3 * C and report["attention"]["zeros"] == 0
    assert report["all"]["zeros"] == 3 * C


def test_a_weight_of_no_known_type_is_named():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="prunable weight '0.weight' has no layer type"):
        layer_types.sparsity_by_type(model)


@pytest.mark.parametrize(
    "method, base, schedule, match",
    [
        ("bitter4", "adamw", SCHEDULE, "unknown pruning method 'bitter4'; accepted: none, magn"),
        ("magnitude", "sgd", SCHEDULE, "unknown base optimizer 'sgd'; accepted: adamw, adamwspam"),
        ("movement", "adamw", {"target": 0.5}, r"missing \['warmup', 'ramp_end', 'frequency'\]"),
        ("movement", "adamw", {**SCHEDULE, "lr": 1.0}, r"unknown \['lr'\]; accepted keys"),
    ],
)
def test_bad_input_names_the_value(method, base, schedule, match):
    with pytest.raises(ValueError, match=match):
        methods.plan(method, base, schedule)
