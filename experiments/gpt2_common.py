"""Shared by the GPT-2 experiments: a registry step or variant -> what the trainer trains.

The model, its options, optimizer and pruning come from the ablation registry
(experiments/ablations/steps.bzl via registry.py); the run profile adds only
size (its trunk, or "real" dims), data, vocabulary and budget. Nothing here restates a step.
`main` is the one entry point of every GPT-2 run target: it resolves the
RunOptions once (experiments/options.py) and hands them down.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from collections.abc import Callable

import torch

from data.text import open_dataset, tokenizer_of
from experiments import checks, options, runner
from experiments.ablations import registry
from experiments.options import RunOptions
from experiments.profiles import REFERENCE_ITERS, Profile
from experiments.runner import StepBuild
from experiments.trainer import TrainConfig
from models.gpt2.config import GPT2Config
from models.gpt2.layers import cache_bytes
from pruning import schedule
from pruning.optimizers import make_optimizer

KV_PROBE_TOKENS = 32


def model_vocab_size(profile: Profile, data_dir: str | None = None) -> int:
    """The vocabulary a profile's models have: the dataset's tokenizer decides.

    GPT-2 BPE datasets keep GPT-2's 50,257 padded to 50,304 (the GPU profiles);
    a character-level dataset gives exactly its own vocabulary (meta.json).
    """
    if tokenizer_of(profile.dataset) == "gpt2":
        return GPT2Config().vocab_size
    return int(open_dataset(profile.dataset, data_dir).meta["vocab_size"])


def step_config(step: registry.Step, profile: Profile, data_dir: str | None = None):
    """The GPT2Config a step trains under `profile`: the profile's size and vocabulary."""
    vocab = model_vocab_size(profile, data_dir)
    if profile.dims == "real":
        cfg = registry.config(step, "real").with_options(block_size=profile.block_size)
    else:
        trunk = dict(profile.dims, block_size=profile.block_size, vocab_size=vocab)
        cfg = registry.config(step, trunk)
    if cfg.vocab_size != vocab:
        raise ValueError(f"vocab_size {cfg.vocab_size} != the {profile.dataset} models' {vocab}")
    return cfg


def variant_step(prefix: str) -> registry.Step:
    """A variant prefix (B, RA, MLA, ...) as a Step on the RATIO base, with no step options."""
    reg = registry.get()
    v = reg.variant(prefix)
    return registry.Step(
        id=-1,
        variant=prefix,
        class_name=v["class"],
        options={**reg.base["options"], **v["options"]},
        doc=v.get("doc", ""),
    )


@torch.no_grad()
def kv_bytes_per_token(model, device: str, dtype: torch.dtype, tokens: int = KV_PROBE_TOKENS):
    """Measured cache bytes per token (all layers) from one prefill's cache tensors."""
    was_training = model.training
    model.eval()
    idx = torch.zeros(1, min(tokens, model.config.block_size), dtype=torch.long, device=device)
    ctx = (
        torch.autocast("cuda", dtype=dtype)
        if torch.device(device).type == "cuda" and dtype != torch.float32
        else torch.autocast("cpu", enabled=False)
    )
    with ctx:
        _, _, cache = model(idx, use_cache=True)
    model.train(was_training)
    return cache_bytes(cache) / idx.shape[1]


def train_config(opts: RunOptions, device: str) -> TrainConfig:
    """The trainer's settings for every GPT-2 step of a run."""
    profile = opts.profile
    return TrainConfig(
        max_iters=profile.max_iters,
        time_budget_s=profile.time_budget_s,
        batch_size=profile.batch_size,
        grad_accum=profile.grad_accum,
        lr=profile.lr,
        min_lr=profile.min_lr,
        warmup_iters=profile.warmup_iters,
        weight_decay=profile.weight_decay,
        eval_interval=profile.eval_interval,
        eval_iters=profile.eval_iters,
        log_interval=profile.log_interval,
        checkpoint_interval=(
            profile.checkpoint_interval
            if opts.checkpoint_interval is None
            else opts.checkpoint_interval
        ),
        dtype=profile.dtype,
        compile=opts.compile,
        device=device,
        seed=opts.seed,
        progress=opts.progress,
        tokens_per_sample=profile.block_size,
    )


class SparsityHook:
    """Reports the pruned optimizer's sparsity in every logged record."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def metrics(self) -> dict:
        return {"sparsity": self.optimizer.sparsity()}


def build_gpt2_step(
    step: registry.Step, opts: RunOptions, device: str, data_dir: str | None = None
) -> StepBuild:
    profile = opts.profile
    cfg = step_config(step, profile, data_dir)
    tcfg = train_config(opts, device)
    torch.manual_seed(opts.seed)
    model = registry.build_model(step, config=cfg)
    initial = checks.snapshot(model)
    pruning = schedule.scaled(step.pruning, profile.max_iters, REFERENCE_ITERS)
    common = dict(lr=tcfg.lr, weight_decay=tcfg.weight_decay, betas=tcfg.betas)
    if pruning:
        opt = make_optimizer("adamwprune", model, base=step.optimizer, pruning=pruning, **common)
    else:
        opt = make_optimizer(step.optimizer, model, **common)
    ds = open_dataset(profile.dataset, data_dir)
    bs, T = profile.batch_size, profile.block_size

    def get_batch(split, g):
        return ds.get_batch(split, bs, T, g, device)

    model.to(device)
    info = {
        "model_class": step.class_name,
        "variant": step.variant,
        "seed": opts.seed,
        "params": model.get_num_params(),
        "kv_bytes_per_token": kv_bytes_per_token(model, device, torch.float32),
        "model_config": dataclasses.asdict(cfg),
        "optimizer": "adamwprune" if pruning else step.optimizer,
        "pruning": pruning,
        "unigram_entropy": checks.unigram_entropy(ds.val),
    }
    hooks = [SparsityHook(opt)] if pruning else []

    def finish(m):
        out = {}
        if pruning:
            out["sparsity"] = opt.sparsity()
            out["target_sparsity"] = pruning["target"]
        out["checks"] = [c.to_dict() for c in step_checks(step, cfg, m, initial, out)]
        return out

    return StepBuild(
        model=model,
        optimizer=opt,
        get_batch=get_batch,
        train_cfg=tcfg,
        hooks=hooks,
        info=info,
        finish=finish,
    )


def step_checks(step: registry.Step, cfg, model, initial: dict, result: dict) -> list:
    """The research checks of one trained step (experiments/checks.py)."""
    out = [
        checks.check_params(step.class_name, cfg, model.get_num_params()),
        checks.check_mlp_width(step.class_name, cfg, checks.measured_mlp_widths(model)),
    ]
    if checks.Design.of(step.class_name).mla:
        measured = checks.attention_cache_bytes_per_token(model, KV_PROBE_TOKENS)
        out.append(checks.check_kv_bytes(step.class_name, cfg, measured))
    if "target_sparsity" in result:
        out.append(checks.check_sparsity(result["sparsity"], result["target_sparsity"]))
    return out + checks.check_moved(initial, model)


def registry_fingerprint() -> str:
    """sha256 of steps.bzl: a changed registry gives a new run id, never a mixed run."""
    return hashlib.sha256(registry.STEPS_BZL.read_bytes()).hexdigest()


def run_record(experiment: str, opts: RunOptions) -> tuple[dict, dict]:
    """(config, train_meta) of a GPT-2 run: what its manifest records.

    `config` is the resolved configuration the run id hashes; `train_meta` the
    fields tools/verify_runs compares before two runs may be put side by side.
    """
    profile = opts.profile
    config = {
        "experiment": experiment,
        "profile": profile.to_dict(),
        "seed": opts.seed,
        "seeds": list(opts.seed_list),
        "compile": opts.compile,
        "registry_sha256": registry_fingerprint(),
    }
    train_meta = {
        "effective_batch_tokens": profile.effective_batch_tokens,
        "effective_batch": profile.effective_batch,
        "max_iters": profile.max_iters,
        "time_budget_s": profile.time_budget_s,
        "compile": config["compile"],
        "dataset": profile.dataset,
        "eval_protocol": f"{profile.eval_iters} batches of {profile.batch_size}x"
        f"{profile.block_size} every {profile.eval_interval} iters",
        "dtype": profile.dtype,
        "seed": opts.seed,
        "seeds": config["seeds"],
    }
    return config, train_meta


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A GPT-2 run target: its name, its steps and how each becomes a registry Step."""

    name: str
    doc: str  # the target's module docstring: --help's text
    step_names: Callable[[], list[str]]  # valid --steps values, in the default order
    step: Callable[[str], registry.Step]  # a --steps value -> the Step it trains
    dir_name: Callable[[str], str]  # a --steps value -> its directory under steps/
    label: Callable[[registry.Step], str]  # what the step is, for tables
    listing: Callable[[str, registry.Step, Profile], str]  # one --list line


def main(experiment: Experiment, argv=None) -> int:
    """Parses the common flags, resolves the RunOptions once, and runs the steps."""
    ap = argparse.ArgumentParser(description=experiment.doc.splitlines()[0])
    options.add_common_args(ap)
    args = ap.parse_args(argv)
    try:
        valid = experiment.step_names()
        opts = options.resolve(args, valid)
    except (ValueError, RuntimeError) as e:
        print(f"{experiment.name}: {e}", file=sys.stderr)
        return 2
    if opts.list_only:
        for name in valid:
            print(experiment.listing(name, experiment.step(name), opts.profile))
        return 0
    config, train_meta = run_record(experiment.name, opts)

    def specs_for(seed_opts: RunOptions) -> list[runner.StepSpec]:
        return [
            runner.StepSpec(
                name=experiment.dir_name(name),
                label=experiment.label(st),
                build=lambda device, st=st: build_gpt2_step(st, seed_opts, device),
            )
            for st, name in ((experiment.step(n), n) for n in opts.steps)
        ]

    specs = runner.per_seed(opts, specs_for)
    return runner.run_steps(experiment.name, specs, opts, config, train_meta)
