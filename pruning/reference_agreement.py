"""Mask agreement of pruning/scores.py with a plain transcription of the reference.

  bazel run //pruning:reference_agreement -- [--steps 200] [--seed 0]

Trains a small GPT-2 (4 layers, width 128, vocabulary 2048, tied lm_head) with
torch's AdamW on random token sequences, then scores every prunable weight
(pruning/masks.py `prunable`, lm_head included) two ways: with this project's
scores, and with the reference's expressions written out below as the old
tree's lib/optimizers.py states them (fp16 eager for bitter8/9, no shared
code with scores.py). Each side keeps the global top (1 - s) with the same
exact top-k; the table is the fraction of mask entries that agree, per score
and sparsity. It compares scores only: both sides share the weights, the Adam
state and the threshold rule.
"""

import argparse

import torch

from models.gpt2.config import GPT2Config
from models.gpt2.gpt2 import GPT2
from pruning import scores
from pruning.masks import _keep_top, prunable

SPARSITIES = (0.5, 0.7, 0.9)
F16 = torch.float16


def _fp16_ref(w, v):
    v_abs = torch.abs(v.to(F16)) + 1e-5
    return (torch.abs(w.to(F16)) * torch.rsqrt(torch.rsqrt(v_abs))).float()


# The reference's expressions, one per variant: (w, m, v, step, beta1) -> importance.
REFERENCE = {
    "bitter0": lambda w, m, v, t, b1: torch.abs(w * m) * torch.abs(w) / (torch.sqrt(v) + 1e-8),
    "bitter1": lambda w, m, v, t, b1: torch.abs(w),
    "bitter2": lambda w, m, v, t, b1: torch.abs(w),
    "bitter3": lambda w, m, v, t, b1: torch.abs(w) * torch.sqrt(torch.abs(m) + 1e-8),
    "bitter4": lambda w, m, v, t, b1: torch.abs(w) * torch.sqrt(torch.abs(m) + 1e-8),
    "bitter5": lambda w, m, v, t, b1: -(-(w.sign() * m) / (torch.sqrt(v) + 1e-8))
    + torch.abs(w) * 0.1,
    "bitter6": lambda w, m, v, t, b1: torch.abs(w)
    * torch.sqrt(torch.abs(m) + 1e-8)
    * (m.pow(2) / (v + 1e-8)).sqrt(),
    "bitter7": lambda w, m, v, t, b1: torch.abs(w) * (torch.abs(v) + 1e-8) ** 0.25,
    "bitter8": lambda w, m, v, t, b1: _fp16_ref(w, v),
    "bitter9": lambda w, m, v, t, b1: _fp16_ref(w, v),
    "bitter8_mhat": lambda w, m, v, t, b1: torch.abs(w)
    * torch.sqrt(torch.abs(m / ((1 - b1**t) + 1e-8)) + 1e-8),
    "bitter9_movement": lambda w, m, v, t, b1: torch.abs(w) * torch.sqrt(torch.abs(m) + 1e-8)
    - 0.1 * (-(w.sign() * m) / (torch.sqrt(v) + 1e-8)),
}


def trained_state(steps, seed, width=128):
    """A small GPT-2 after `steps` AdamW steps: (weights, m, v, step, beta1)."""
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=4, n_head=4, n_embd=width, block_size=64, vocab_size=2048)
    model = GPT2(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    for _ in range(steps):
        x = torch.randint(0, cfg.vocab_size, (8, cfg.block_size + 1))
        _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    ws = [w.detach() for _, w in prunable(model)]
    st = [opt.state[w] for _, w in prunable(model)]
    step = int(st[0]["step"])
    return ws, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st], step, 0.9


def global_mask(per_tensor, s):
    return _keep_top(torch.cat([x.flatten().float() for x in per_tensor]), s)


def agreement(steps=200, seed=0, width=128):
    ws, ms, vs, step, beta1 = trained_state(steps, seed, width)
    rows = {}
    for name, ref in REFERENCE.items():
        fn = scores.get_score(name)
        ours = [fn(w, m, v, step=step, beta1=beta1) for w, m, v in zip(ws, ms, vs, strict=True)]
        theirs = [ref(w, m, v, step, beta1) for w, m, v in zip(ws, ms, vs, strict=True)]
        rows[name] = [
            float((global_mask(ours, s) == global_mask(theirs, s)).float().mean())
            for s in SPARSITIES
        ]
    return rows, sum(w.numel() for w in ws)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200, help="AdamW steps before scoring")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.steps < 1:
        raise SystemExit(f"--steps {args.steps} is invalid; accepted: an int >= 1")
    rows, n = agreement(args.steps, args.seed)
    print(f"{n:,} prunable weights after {args.steps} AdamW steps (seed {args.seed})")
    print("| score | " + " | ".join(f"s = {s}" for s in SPARSITIES) + " |")
    print("|---|" + "---|" * len(SPARSITIES))
    for name, agree in rows.items():
        print(f"| {name} | " + " | ".join(f"{100 * a:.4f}%" for a in agree) + " |")


if __name__ == "__main__":
    main()
