"""Global magnitude pruning of a small MLP on scikit-learn's 8x8 digits, on the CPU.

    bazel run //paper/measure:prune_digits -- --out results/paper/pruning

Trains a 64-256-256-10 MLP with Adam and prunes every Linear weight to a
target sparsity with the cubic ramp the project's pruners use,
s(t) = s_target * p^3 with p = clip((t - warmup) / (ramp_end - warmup), 0, 1),
re-scoring every `frequency` steps. Gradients are multiplied by the mask and
pruned weights stay zero. `random` draws the mask at the same sparsity
schedule without looking at the weights: the baseline magnitude must beat.
Every run records the sparsity it actually reached, counted from the weights.
"""

import argparse
import csv
import io

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from paper.measure import manifest


def data(seed=0):
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    y = digits.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return tuple(torch.from_numpy(a) for a in (xtr, xte, ytr, yte))


def mlp(hidden):
    return nn.Sequential(
        nn.Linear(64, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def cubic_sparsity(step, target, warmup, ramp_end):
    p = min(max((step - warmup) / (ramp_end - warmup), 0.0), 1.0)
    return target * p**3


def update_masks(weights, masks, sparsity, method, gen):
    """Keeps the top (1 - sparsity) weights globally (or a random subset)."""
    total = sum(w.numel() for w in weights)
    n_prune = int(round(sparsity * total))
    if n_prune == 0:
        return
    if method == "magnitude":
        scores = torch.cat([(w.abs() * m).flatten() for w, m in zip(weights, masks, strict=True)])
    else:  # random, but never reviving a pruned weight
        scores = torch.cat(
            [
                ((torch.rand(w.shape, generator=gen) + 1) * m).flatten()
                for w, m in zip(weights, masks, strict=True)
            ]
        )
    threshold = torch.kthvalue(scores, n_prune).values
    keep = scores > threshold
    # Ties at the threshold: keep exactly total - n_prune.
    excess = int(keep.sum()) - (total - n_prune)
    if excess < 0:
        tied = torch.nonzero(scores == threshold).flatten()[:-excess]
        keep[tied] = True
    offset = 0
    for w, m in zip(weights, masks, strict=True):
        n = w.numel()
        m.copy_(keep[offset : offset + n].view_as(m).to(m.dtype))
        offset += n


def run(method, target, seed, args, split):
    xtr, xte, ytr, yte = split
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1000)
    model = mlp(args.hidden)
    weights = [m.weight for m in model if isinstance(m, nn.Linear)]
    masks = [torch.ones_like(w) for w in weights]
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = (len(xtr) + args.batch - 1) // args.batch
    total_steps = args.epochs * steps_per_epoch
    warmup, ramp_end = int(0.2 * total_steps), int(0.7 * total_steps)
    step = 0
    for _epoch in range(args.epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), args.batch):
            idx = perm[i : i + args.batch]
            loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            for w, m in zip(weights, masks, strict=True):
                w.grad.mul_(m)
            opt.step()
            step += 1
            if target > 0 and step % args.frequency == 0 and step >= warmup:
                s = cubic_sparsity(step, target, warmup, ramp_end)
                update_masks(weights, masks, s, method, gen)
            with torch.no_grad():
                for w, m in zip(weights, masks, strict=True):
                    w.mul_(m)
    if target > 0:
        update_masks(weights, masks, target, method, gen)
        with torch.no_grad():
            for w, m in zip(weights, masks, strict=True):
                w.mul_(m)
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
        zeros = sum(int((w == 0).sum()) for w in weights)
        total = sum(w.numel() for w in weights)
    return {
        "method": method,
        "target_sparsity": target,
        "seed": seed,
        "achieved_sparsity": zeros / total,
        "test_accuracy": acc,
        "final_train_loss": float(loss),
        "pruned_weights": zeros,
        "total_weights": total,
        "steps": total_steps,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--targets", default="0,0.5,0.7,0.8,0.9,0.95,0.98")
    parser.add_argument("--methods", default="magnitude,random")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--frequency", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    split = data()
    rows = []
    for method in args.methods.split(","):
        for target in [float(t) for t in args.targets.split(",")]:
            if method == "random" and target == 0:
                continue  # identical to magnitude at 0: no pruning at all
            for seed in range(args.seeds):
                row = run(method, target, seed, args, split)
                rows.append(row)
                print(
                    f"{method:9s} target={target:.2f} seed={seed} "
                    f"sparsity={row['achieved_sparsity']:.4f} acc={row['test_accuracy']:.4f}"
                )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out = manifest.workspace_dir() / args.out
    manifest.write_text(out / "runs.csv", buf.getvalue())
    config = {k: v for k, v in vars(args).items() if k != "out"}
    config.update({"train_samples": len(split[0]), "test_samples": len(split[1])})
    manifest.write_json(out / "config.json", config)
    manifest.write_manifest(
        out,
        "pruning",
        "//paper/measure:prune_digits",
        ["paper/measure/prune_digits.py", "paper/measure/manifest.py"],
        ["torch", "numpy", "sklearn"],
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
