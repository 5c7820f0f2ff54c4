"""A GPT-2 run: one step of an ablation (experiments/ablations/steps.bzl), built for training.

The model, its options, optimizer and pruning come from the step's
declaration (experiments/ablations/step.py); the run profile adds only size
(its trunk, or "real" dims), data, vocabulary and the training
configuration. Nothing here restates a step. `build` is the "gpt2" kind of
experiments/run_step.py.

A run's spec declares the step as its three parts:
    {"id": 8, "step": RATIO_STEPS[8], "variant": VARIANTS["MLA"], "base": RATIO_BASE}

The optimizer and its pruning are pruning/methods.py's, from the step's
optimizer and pruning declaration (`method_of`): every method (none,
magnitude, movement, bitter7/8/9) is built from one schedule, scaled to the
budget, with the profile's hyperparameters, so two steps that differ in the
method differ in nothing else. A pruned run reports its sparsity over all
prunable weights and per layer type (pruning/layer_types.py: attention, MLP,
the tied head). Its label (`size_label`) states what was built at the
profile's size, not what the declaration's doc says of the real size.
"""

from __future__ import annotations

import dataclasses

import torch

from data.text import open_dataset, tokenizer_of
from experiments import checks, probes
from experiments.ablations import step as step_lib
from experiments.ablations.step import Step
from experiments.run_profile import REFERENCE_ITERS, Profile
from experiments.step_build import SparsityHook, StepBuild
from models.gpt2.config import GPT2Config
from pruning import layer_types, methods, schedule


def step_of(declaration: dict) -> Step:
    """The Step a run's declaration names (its step, variant and base parts)."""
    return Step.from_parts(
        declaration["id"], declaration["step"], declaration["variant"], declaration["base"]
    )


def model_vocab_size(dataset: str, meta: dict) -> int:
    """The vocabulary a dataset's models have: its tokenizer decides.

    GPT-2 BPE datasets keep GPT-2's 50,257 padded to 50,304 (the GPU profiles);
    a character-level dataset gives exactly its own vocabulary (meta.json).
    """
    if tokenizer_of(dataset) == "gpt2":
        return GPT2Config().vocab_size
    return int(meta["vocab_size"])


def step_config(step: Step, profile: Profile, vocab: int):
    """The GPT2Config a step trains under `profile`: the profile's size and vocabulary."""
    if profile.dims == "real":
        cfg = step_lib.config(step, "real").with_options(block_size=profile.block_size)
    else:
        trunk = dict(profile.dims, block_size=profile.block_size, vocab_size=vocab)
        cfg = step_lib.config(step, trunk)
    if cfg.vocab_size != vocab:
        raise ValueError(f"vocab_size {cfg.vocab_size} != the {profile.dataset} models' {vocab}")
    return cfg


def method_of(pruning: dict | None) -> tuple[str, dict | None]:
    """A step's pruning declaration as pruning/methods.py takes it: (method, schedule).

    None is the dense "none". A method is declared by "method" (magnitude,
    movement, or a bitter score: gpt2_pruning.bzl) or, for AdamWPrune, by
    "variant" (bitter7: RATIO step 1); the other keys are the schedule.
    """
    if not pruning:
        return "none", None
    schedule_ = {k: v for k, v in pruning.items() if k not in ("method", "variant")}
    return pruning.get("method") or pruning.get("variant"), schedule_


def size_label(step: Step, cfg, method: str, target: float | None) -> str:
    """What a step built, at the size it trains: "B: MLP 512 (ratio 4.0), bitter7 50%".

    Every number is the built config's (its MLP width, latent, RA band, ...),
    so the cpu profile's 2 x 128 trunk reads as such and not as the doc's 124M.
    """
    d = checks.Design.of(step.class_name)
    parts = [f"MLP {checks.mlp_width(d, cfg)} (ratio {cfg.mlp_ratio:g})"]
    if cfg.mlp_attn_gate:
        parts.append("attention gate")
    if cfg.mlp_cross_token:
        parts.append("cross-token MLP")
    if d.ra:
        mix = "learned" if cfg.ra_learned else f"alpha {cfg.ra_alpha:g}"
        parts.append(f"RA {mix}, band {cfg.ra_band}")
    if d.mla:
        parts.append(f"latent {cfg.d_latent}")
    if d.splice:
        parts.append(f"KVSplice {cfg.d_compressed}" + (" x 2" if d.split_kv else ""))
    if cfg.ract:
        parts.append(
            f"RA-CT {cfg.ract_stat}, k {cfg.ract_k}, alpha {cfg.ract_alpha:g}, "
            f"on the {cfg.ract_apply}"
        )
    parts.append(step.optimizer)
    if method != "none":
        parts.append(f"{method} {target:.0%}")
    return f"{step.variant}: {', '.join(parts)}"


def build(spec, profile: Profile, device: str, data_root: str):
    """The StepBuild of one run (experiments/record.py RunSpec) of a GPT-2 step."""
    step, seed = step_of(spec.declaration), spec.seed
    ds = open_dataset(profile.dataset, data_root)
    cfg = step_config(step, profile, model_vocab_size(profile.dataset, ds.meta))
    tcfg = dataclasses.replace(profile.train, device=device, seed=seed, progress=False)
    torch.manual_seed(seed)
    model = step_lib.build_model(step, cfg)
    # On the device before the optimizer: a pruner's masks (and movement's W0) are made
    # beside the weights they were built from.
    model.to(device)
    initial = probes.snapshot(model)
    method, sched = method_of(schedule.scaled(step.pruning, tcfg.max_iters, REFERENCE_ITERS))
    pruning = None if sched is None else {"method": method, **sched}
    opt = methods.build(
        model,
        method,
        step.optimizer,
        sched,
        lr=tcfg.lr,
        weight_decay=tcfg.weight_decay,
        betas=tcfg.betas,
    )
    bs, T = tcfg.batch_size, profile.block_size

    def get_batch(split, g):
        return ds.get_batch(split, bs, T, g, device)

    cache = probes.cache_bytes_per_token(model)

    def finish(m):
        figures = {}
        if pruning:
            figures["sparsity"] = opt.sparsity()
            figures["target_sparsity"] = pruning["target"]
            by_type = layer_types.sparsity_by_type(m)
            figures.update({f"sparsity_{t}": by_type[t]["sparsity"] for t in layer_types.TYPES})
        return figures, [c.to_dict() for c in run_checks(step, cfg, m, initial, figures)]

    return StepBuild(
        model=model,
        optimizer=opt,
        get_batch=get_batch,
        train_cfg=tcfg,
        hooks=[SparsityHook(opt)] if pruning else [],
        built={
            "label": size_label(step, cfg, method, (pruning or {}).get("target")),
            "model_class": step.class_name,
            "variant": step.variant,
            "model_config": dataclasses.asdict(cfg),
            "optimizer": step.optimizer,
            "method": method,
            "pruning": pruning,
            "grad_clip": tcfg.grad_clip,
            "dataset": profile.dataset,
        },
        values={
            "model_class": step.class_name,
            "params": model.get_num_params(),
            "kv_bytes_per_token": cache["attention"],
            "cache_bytes_per_token": cache["total"],
        },
        finish=finish,
    )


def run_checks(step: Step, cfg, model, initial: dict, figures: dict) -> list:
    """The research checks of one trained GPT-2 run (experiments/checks.py)."""
    out = [
        checks.check_params(step.class_name, cfg, model.get_num_params()),
        checks.check_mlp_width(step.class_name, cfg, probes.measured_mlp_widths(model)),
    ]
    if checks.Design.of(step.class_name).mla:
        measured = probes.cache_bytes_per_token(model)["attention"]
        out.append(checks.check_kv_bytes(step.class_name, cfg, measured))
    if "target_sparsity" in figures:
        out.append(checks.check_sparsity(figures["sparsity"], figures["target_sparsity"]))
    return out + probes.check_moved(initial, model)
