"""A pruning-matrix cell: one vision model, optimizer, pruning method and target, for training.

The "vision" kind of experiments/run_step.py (`build`). A cell's declaration
(experiments/pruning_matrix.bzl, one cell of MATRIX) names the model, the
optimizer and its learning rate, the method (`none`, magnitude and movement
from pruning/masks.py around the optimizer, or an AdamWPrune score bitter*),
the target sparsity, the model's size, data, budget and training
augmentation on the profile's device (pruning_matrix.bzl MODELS), and the
pruning schedule, declared for `schedule_iters` iterations and scaled to the
cell's budget. The augmentation (data/augment.py: the old tree's random crop
with padding 4 and horizontal flip for CIFAR) is applied to the batches drawn
from the training split, never to the test split's. The cell trains through
experiments/trainer.py and reports its test accuracy and the sparsity it
reached, with the research check that the sparsity is within 1% of target.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from data.vision import load_vision
from experiments import checks
from experiments.step_build import SparsityHook, StepBuild
from experiments.train_config import TrainConfig
from models.vision import zoo as vision_zoo
from pruning import optimizers as popt
from pruning import schedule, scores


class Classifier(nn.Module):
    """Adds the cross-entropy loss so the trainer's `model(x, y) -> (logits, loss)` holds."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x, targets=None):
        logits = self.net(x)
        loss = F.cross_entropy(logits, targets) if targets is not None else None
        return logits, loss


def train_config(decl: dict, overrides: dict, profile, device: str, seed: int) -> TrainConfig:
    """A cell's training settings: its own budget and batch (--iters overrides the budget),
    the profile's precision and time budget."""
    iters = overrides.get("iters") or decl["settings"]["iters"]
    lr = decl["lr"]
    return TrainConfig(
        max_iters=iters,
        time_budget_s=profile.train.time_budget_s,
        batch_size=decl["settings"]["batch"],
        lr=lr,
        min_lr=lr * 0.01,
        warmup_iters=max(1, iters // 20),
        weight_decay=decl["weight_decay"],
        eval_interval=max(1, iters // 4),
        eval_iters=4,
        log_interval=1 if iters <= 1000 else 10,
        dtype=profile.train.dtype,
        compile=False,
        device=device,
        seed=seed,
        tokens_per_sample=1,
        grad_clip=popt.GRAD_CLIP.get(decl["optimizer"], 0.0),
        progress=False,
        checkpoint_interval=max(1, iters // 4),
    )


def on_device(data, device: str):
    """The dataset with its images and labels on `device` (drawn from there batch by batch)."""
    moved = {k: getattr(data, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
    return dataclasses.replace(data, **moved)


def make_cell_optimizer(net, decl: dict, sched: dict):
    """The cell's optimizer: AdamWPrune scoring from its state for a bitter* method, the
    mask pruner around it for magnitude or movement, or the optimizer alone for none."""
    method, name = decl["method"], decl["optimizer"]
    common = dict(lr=decl["lr"], weight_decay=decl["weight_decay"])
    if method in scores.SCORES:
        pruning = dict(variant=method, **sched)
        return popt.make_optimizer("adamwprune", net, base=name, pruning=pruning, **common)
    pruning = None if method == "none" else dict(method=method, **sched)
    return popt.make_optimizer(name, net, pruning=pruning, **common)


def build(spec, profile, device: str, data_root: str | None) -> StepBuild:
    """The StepBuild of one cell's run."""
    decl, settings = spec.declaration, spec.declaration["settings"]
    tcfg = train_config(decl, spec.overrides, profile, device, spec.seed)
    data = on_device(
        load_vision(
            settings["dataset"],
            settings["image_size"],
            settings["channels"],
            data_dir=data_root,
            augment=settings["augment"],
        ),
        device,
    )
    torch.manual_seed(spec.seed)
    net = vision_zoo.build(
        decl["model"], num_classes=data.num_classes, in_channels=settings["channels"]
    )
    model = Classifier(net).to(device)  # before the optimizer: masks sit beside the weights
    target = decl["target"]
    sched = dict(
        schedule.scaled(decl["schedule"], tcfg.max_iters, decl["schedule_iters"]), target=target
    )
    opt = make_cell_optimizer(net, decl, sched)
    xte, yte = data.x_test, data.y_test
    bs = tcfg.batch_size

    def get_batch(split, g):
        """A batch drawn with replacement: the training split's augmented, the test's not."""
        return data.sample("train" if split == "train" else "test", bs, g)

    @torch.no_grad()
    def finish(m):
        m.eval()
        correct = 0
        for i in range(0, len(xte), 512):
            correct += int((m(xte[i : i + 512])[0].argmax(-1) == yte[i : i + 512]).sum())
        m.train()
        figures = {"test_acc": correct / len(xte)}
        found = []
        if decl["method"] != "none":
            figures["sparsity"] = opt.sparsity()
            figures["target_reached"] = figures["sparsity"] >= target - 0.005
            found.append(checks.check_sparsity(figures["sparsity"], target).to_dict())
        return figures, found

    return StepBuild(
        model=model,
        optimizer=opt,
        get_batch=get_batch,
        train_cfg=tcfg,
        hooks=[SparsityHook(opt)] if decl["method"] != "none" else [],
        built={
            "model_class": decl["model"],
            "optimizer": decl["optimizer"],
            "method": decl["method"],
            "dataset": settings["dataset"],
            "augment": None if data.augment is None else data.augment.to_dict(),
            "schedule": sched,
            "train": tcfg.to_dict(),
        },
        values={
            "model_class": decl["model"],
            "target_sparsity": target if decl["method"] != "none" else 0.0,
            "params": sum(p.numel() for p in net.parameters()),
        },
        finish=finish,
    )
