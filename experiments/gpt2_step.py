"""A GPT-2 run: one step of an ablation (experiments/ablations/steps.bzl), built for training.

The model, its options, optimizer and pruning come from the step's
declaration (experiments/ablations/step.py); the run profile adds only size
(its trunk, or "real" dims), data, vocabulary and the training
configuration. Nothing here restates a step. `build` is the "gpt2" kind of
experiments/run_step.py.

A run's spec declares the step as its three parts:
    {"id": 8, "step": RATIO_STEPS[8], "variant": VARIANTS["MLA"], "base": RATIO_BASE}
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
from pruning import schedule
from pruning.optimizers import make_optimizer


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


def make_step_optimizer(model, step: Step, pruning: dict | None, cfg) -> torch.optim.Optimizer:
    """The step's optimizer: AdamWPrune around it for a bitter score, a mask pruner around
    it for magnitude or movement ("method"), or the optimizer alone."""
    common = dict(lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    if pruning and not pruning.get("method"):
        return make_optimizer("adamwprune", model, base=step.optimizer, pruning=pruning, **common)
    return make_optimizer(step.optimizer, model, pruning=pruning, **common)


def build(spec, profile: Profile, device: str, data_root: str):
    """The StepBuild of one run (experiments/record.py RunSpec) of a GPT-2 step."""
    step, seed = step_of(spec.declaration), spec.seed
    ds = open_dataset(profile.dataset, data_root)
    cfg = step_config(step, profile, model_vocab_size(profile.dataset, ds.meta))
    tcfg = dataclasses.replace(profile.train, device=device, seed=seed, progress=False)
    torch.manual_seed(seed)
    model = step_lib.build_model(step, cfg)
    initial = probes.snapshot(model)
    pruning = schedule.scaled(step.pruning, tcfg.max_iters, REFERENCE_ITERS)
    opt = make_step_optimizer(model, step, pruning, tcfg)
    bs, T = tcfg.batch_size, profile.block_size

    def get_batch(split, g):
        return ds.get_batch(split, bs, T, g, device)

    model.to(device)
    cache = probes.cache_bytes_per_token(model)

    def finish(m):
        figures = {}
        if pruning:
            figures["sparsity"] = opt.sparsity()
            figures["target_sparsity"] = pruning["target"]
        return figures, [c.to_dict() for c in run_checks(step, cfg, m, initial, figures)]

    return StepBuild(
        model=model,
        optimizer=opt,
        get_batch=get_batch,
        train_cfg=tcfg,
        hooks=[SparsityHook(opt)] if pruning else [],
        built={
            "model_class": step.class_name,
            "variant": step.variant,
            "model_config": dataclasses.asdict(cfg),
            "optimizer": step.optimizer,
            "pruning": pruning,
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
