"""A bigram run: BigramLM (experiments/bigram.py) on a character dataset, the runner's test kind.

The "bigram" kind of experiments/run_step.py (`build`). No experiment
declares it: experiments/run_step_test.py runs the action on it, so the
action's tests (its record, checkpoint store, resume after SIGKILL, SIGTERM,
a NaN loss, a machine failure) depend on the runner and the trainer and not
on models/gpt2; an edit of the attention code reruns none of them. A run's
declaration is `{"dim": D}`, the rank of the bigram table; the profile gives
the dataset and the training configuration, as it does for a GPT-2 step.
"""

from __future__ import annotations

import dataclasses

import torch

from data.text import open_dataset
from experiments.bigram import BigramLM
from experiments.checks import MOVED_TOL, Check
from experiments.step_build import StepBuild
from pruning.optimizers import make_optimizer


def check_moved(initial: torch.Tensor, model: BigramLM) -> Check:
    """The embedding table's mean absolute change from its initial values."""
    drift = float((model.emb.weight.detach().cpu() - initial).abs().mean())
    return Check("table moved", drift > MOVED_TOL, f"mean abs change {drift:.2g}")


def build(spec, profile, device: str, data_root: str) -> StepBuild:
    """The StepBuild of one bigram run (experiments/record.py RunSpec)."""
    ds = open_dataset(profile.dataset, data_root)
    tcfg = dataclasses.replace(profile.train, device=device, seed=spec.seed, progress=False)
    torch.manual_seed(spec.seed)
    dim = int(spec.declaration["dim"])
    model = BigramLM(int(ds.meta["vocab_size"]), dim).to(device)
    initial = model.emb.weight.detach().cpu().clone()
    opt = make_optimizer(
        "adamw", model, lr=tcfg.lr, weight_decay=tcfg.weight_decay, betas=tcfg.betas
    )
    bs, T = tcfg.batch_size, profile.block_size

    def get_batch(split, g):
        return ds.get_batch(split, bs, T, g, device)

    def finish(m):
        return {}, [check_moved(initial, m).to_dict()]

    return StepBuild(
        model=model,
        optimizer=opt,
        get_batch=get_batch,
        train_cfg=tcfg,
        built={"model_class": "BigramLM", "dim": dim},
        values={"model_class": "BigramLM", "params": sum(p.numel() for p in model.parameters())},
        finish=finish,
    )
