"""The pruning matrix: optimizer x pruning method x target sparsity on LeNet-5 and ResNet-18.

  bazel run //experiments:pruning_matrix                     # cpu: sklearn digits
  bazel run //experiments:pruning_matrix -- --models lenet5 --optimizers adam,adamw \
      --methods magnitude,bitter7,bitter8 --sparsities 0.5,0.7
  bazel run --config=cuda //experiments:pruning_matrix -- --profile h100   # MNIST, CIFAR-10

Methods: `none` (dense reference), `magnitude` and `movement` (pruning/masks.py,
around any optimizer), and `bitter0`..`bitter9`, `bitter8_mhat`,
`bitter9_movement` (AdamWPrune, scored from the Adam-family optimizer's own
state, so not with sgd). Each cell trains through experiments/trainer.py,
then reports test accuracy and the sparsity reached; a cell that misses its
target by more than half a point is marked in the summary. On the CPU
profile the models train on scikit-learn's digits (resized to the model's
input); on GPU profiles on MNIST (LeNet-5) and CIFAR-10 (ResNet-18) from
$KNLP_DATA_DIR.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from data.vision import load_vision
from experiments import checks, options, plots, runner
from experiments.options import RunOptions
from experiments.results import exit_on_results_error
from experiments.summary import Report
from experiments.trainer import TrainConfig
from models.vision import zoo as vision_zoo
from pruning import optimizers as popt
from pruning import schedule, scores
from pruning.masks import PRUNERS

EXPERIMENT = "pruning_matrix"

# Size and data per model, on the CPU and on a GPU: declared once here.
VISION = {
    "cpu": {
        "lenet5": dict(dataset="digits", image_size=28, channels=1, iters=300, batch=64),
        "resnet18": dict(dataset="digits", image_size=16, channels=3, iters=40, batch=32),
    },
    "cuda": {
        "lenet5": dict(dataset="mnist", image_size=28, channels=1, iters=4690, batch=128),
        "resnet18": dict(dataset="cifar10", image_size=32, channels=3, iters=39100, batch=128),
    },
}
LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3, "adamwadv": 2e-3, "adamwspam": 2e-3}
WEIGHT_DECAY = 5e-4
# Pruning ramp as fractions of the budget: start at 10%, reach the target at 60%.
# Every cell's pruning schedule, declared for 100 iterations and scaled to the
# cell's budget: warmup 10%, cubic ramp to 60%, 25 rescorings on the way.
SCHEDULE, SCHEDULE_ITERS = {"warmup": 10, "ramp_end": 60, "frequency": 2}, 100

DEFAULTS = {
    "models": "lenet5,resnet18",
    "optimizers": "sgd,adamw",
    "methods": "none,magnitude,movement,bitter7",
    "sparsities": "0.5,0.7,0.9",
}
# The CPU default keeps ResNet-18 to a few cells (it is ~100x LeNet-5's cost).
CPU_RESNET = {
    "optimizers": ["adamw"],
    "methods": ["none", "magnitude", "bitter7"],
    "sparsities": [0.5],
}


def methods() -> list[str]:
    return ["none", *PRUNERS, *scores.SCORES]


class Classifier(nn.Module):
    """Adds the cross-entropy loss so the trainer's `model(x, y) -> (logits, loss)` holds."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x, targets=None):
        logits = self.net(x)
        loss = F.cross_entropy(logits, targets) if targets is not None else None
        return logits, loss


def _csv(text: str, valid: list[str], what: str) -> list[str]:
    out = [p.strip() for p in text.split(",") if p.strip()]
    for p in out:
        if p not in valid:
            raise ValueError(f"unknown {what} {p!r}; valid: {', '.join(valid)}")
    return out


def cells(args, device_kind: str) -> list[tuple[str, str, str, float]]:
    models = _csv(args.models, list(vision_zoo.VISION_MODELS), "model")
    opts = _csv(args.optimizers, list(popt.ADAM_FAMILY) + ["sgd"], "optimizer")
    meths = _csv(args.methods, methods(), "method")
    sps = []
    for s in args.sparsities.split(","):
        v = float(s)
        if not 0.0 < v < 1.0:
            raise ValueError(f"sparsity {s!r}: must be in (0, 1)")
        sps.append(v)
    out = []
    for m in models:
        if m not in VISION[device_kind]:
            raise ValueError(
                f"model {m!r} has no {device_kind} settings; have: "
                f"{', '.join(VISION[device_kind])}"
            )
        o_list, me_list, s_list = opts, meths, sps
        if m == "resnet18" and device_kind == "cpu" and args.default_matrix:
            o_list, me_list, s_list = (
                CPU_RESNET["optimizers"],
                CPU_RESNET["methods"],
                CPU_RESNET["sparsities"],
            )
        for o in o_list:
            for me in me_list:
                if me in scores.SCORES and o not in popt.ADAM_FAMILY:
                    continue  # AdamWPrune scores from Adam state; sgd has none
                for s in ([0.0] if me == "none" else s_list):
                    out.append((m, o, me, s))
    return out


def cell_name(model, opt, method, s) -> str:
    return f"{model}-{opt}-{method}" + ("" if method == "none" else f"-{round(s * 100)}")


def build_cell(model_name, opt_name, method, target, opts: RunOptions, device, data_cache):
    profile, seed = opts.profile, opts.seed
    kind = "cpu" if profile.device == "cpu" else "cuda"
    spec = VISION[kind][model_name]
    key = (spec["dataset"], spec["image_size"], spec["channels"])
    if key not in data_cache:
        data_cache[key] = load_vision(spec["dataset"], spec["image_size"], spec["channels"])
    data = data_cache[key]
    iters = opts.iters or spec["iters"]  # --iters overrides the model's own budget
    torch.manual_seed(seed)
    net = vision_zoo.build(model_name, num_classes=data.num_classes, in_channels=spec["channels"])
    model = Classifier(net)
    lr = LR[opt_name]
    sched = dict(schedule.scaled(SCHEDULE, iters, SCHEDULE_ITERS), target=target)
    if method in scores.SCORES:
        opt = popt.make_optimizer(
            "adamwprune",
            net,
            lr=lr,
            weight_decay=WEIGHT_DECAY,
            base=opt_name,
            pruning=dict(variant=method, **sched),
        )
    else:
        pruning = None if method == "none" else dict(method=method, **sched)
        opt = popt.make_optimizer(opt_name, net, lr=lr, weight_decay=WEIGHT_DECAY, pruning=pruning)
    xtr, ytr = data.x_train.to(device), data.y_train.to(device)
    xte, yte = data.x_test.to(device), data.y_test.to(device)
    bs = spec["batch"]

    def get_batch(split, g):
        x, y = (xtr, ytr) if split == "train" else (xte, yte)
        idx = torch.randint(len(x), (bs,), generator=g).to(device)
        return x[idx], y[idx]

    tcfg = TrainConfig(
        max_iters=iters,
        time_budget_s=profile.time_budget_s,
        batch_size=bs,
        lr=lr,
        min_lr=lr * 0.01,
        warmup_iters=max(1, iters // 20),
        weight_decay=WEIGHT_DECAY,
        eval_interval=max(1, iters // 4),
        eval_iters=4,
        log_interval=1 if iters <= 1000 else 10,
        dtype=profile.dtype,
        compile=False,
        device=device,
        seed=seed,
        tokens_per_sample=1,
        grad_clip=popt.GRAD_CLIP.get(opt_name, 0.0),
        progress=opts.progress,
        checkpoint_interval=opts.checkpoint_interval or 0,
    )

    @torch.no_grad()
    def finish(m):
        m.eval()
        correct = 0
        for i in range(0, len(xte), 512):
            correct += int((m(xte[i : i + 512])[0].argmax(-1) == yte[i : i + 512]).sum())
        m.train()
        out = {"test_acc": correct / len(xte)}
        if method != "none":
            out["sparsity"] = opt.sparsity()
            out["target_reached"] = out["sparsity"] >= target - 0.005
            out["checks"] = [checks.check_sparsity(out["sparsity"], target).to_dict()]
        return out

    info = {
        "model_class": model_name,
        "optimizer": opt_name,
        "method": method,
        "target_sparsity": target if method != "none" else 0.0,
        "dataset": spec["dataset"],
        "params": sum(p.numel() for p in net.parameters()),
        "schedule": sched,
    }
    return runner.StepBuild(
        model=model, optimizer=opt, get_batch=get_batch, train_cfg=tcfg, info=info, finish=finish
    )


COLUMNS = (
    ("step", "cell"),
    ("model_class", "model"),
    ("dataset", "data"),
    ("optimizer", "optimizer"),
    ("method", "method"),
    ("target_sparsity", "target"),
    ("sparsity", "sparsity"),
    ("target_reached", "reached"),
    ("test_acc", "test acc"),
    ("iters", "iters"),
    ("step_wall_s", "wall s"),
)


def _plots(run, rows):
    pts = {
        k: (r["sparsity"], r["test_acc"])
        for k, r in rows.items()
        if r.get("status") == "done" and r.get("sparsity") is not None
    }
    if pts:
        plots.scatter(
            pts,
            run.path("plots", "accuracy_vs_sparsity.png"),
            "sparsity reached",
            "test accuracy",
            "pruning matrix: accuracy vs sparsity",
        )


# A classification run: cells ranked by test accuracy; no dense reference to mark against.
REPORT = Report(
    metric="test_acc",
    label="test accuracy",
    lower_is_better=False,
    compare=False,
    columns=COLUMNS,
    intro="Each cell is a classifier: `test acc` is its accuracy on the whole test set at the "
    "end, `sparsity` the fraction of prunable weights that are zero, `reached` whether it is "
    "within half a point of the target.",
    extra_plots=_plots,
)


def _kind(profile) -> str:
    return "cpu" if profile.device == "cpu" else "cuda"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_common_args(ap)
    for k, v in DEFAULTS.items():
        ap.add_argument(f"--{k}", default=None, help=f"comma-separated (default {v})")
    args = ap.parse_args(argv)
    args.default_matrix = all(getattr(args, k) is None for k in DEFAULTS)
    for k, v in DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    try:
        opts = options.resolve(
            args, lambda profile: [cell_name(*c) for c in cells(args, _kind(profile))]
        )
    except (ValueError, RuntimeError) as e:
        print(f"{EXPERIMENT}: {e}", file=sys.stderr)
        return 2
    profile, kind = opts.profile, _kind(opts.profile)
    chosen = set(opts.steps)
    all_cells = [c for c in cells(args, kind) if cell_name(*c) in chosen]
    if opts.list_only:
        print("\n".join(cell_name(*c) for c in all_cells))
        return 0
    data_cache: dict = {}

    def specs_for(seed_opts: RunOptions) -> list[runner.StepSpec]:
        return [
            runner.StepSpec(
                name=cell_name(*c),
                label=f"{c[0]} {c[1]} {c[2]}" + ("" if c[2] == "none" else f" {c[3]:.0%}"),
                build=lambda device, c=c: build_cell(*c, seed_opts, device, data_cache),
            )
            for c in all_cells
        ]

    specs = runner.per_seed(opts, specs_for)
    config = {
        "experiment": EXPERIMENT,
        "profile": profile.to_dict(),
        "seed": opts.seed,
        "seeds": list(opts.seed_list),
        "vision": VISION[kind],
        "lr": LR,
        "matrix": {k: getattr(args, k) for k in DEFAULTS},
    }
    train_meta = {
        "effective_batch_tokens": None,
        "max_iters": opts.iters,
        "time_budget_s": profile.time_budget_s,
        "compile": False,
        "dataset": ",".join(sorted({VISION[kind][m]["dataset"] for m in VISION[kind]})),
        "eval_protocol": "full test set accuracy at the end",
        "dtype": profile.dtype,
        "seed": opts.seed,
        "seeds": config["seeds"],
    }
    return runner.run_steps(EXPERIMENT, specs, opts, config, train_meta, report=REPORT)


if __name__ == "__main__":
    sys.exit(exit_on_results_error(main))
