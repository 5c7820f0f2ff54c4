"""A CPU-scale analogue of RATIO ablation steps 0 and 2: MLP 1:2.0 versus 1:2.5.

    bazel run //paper/measure:tiny_ratio -- --out results/paper/ratio_cpu

A byte-level GPT (nanoGPT-style: pre-norm blocks, causal self-attention, GELU
MLP, tied embeddings) trains on text that every machine has offline: a fixed
list of modules from this Python's standard library, recorded by sha256. The
two configurations differ only in the MLP width: expansion 4 (attention:MLP
parameters 1:2.0, GPT-2's) and expansion 5 (1:2.5, RATIO's golden ratio step),
both multiples of 64. Same seeds, batches, steps and schedule for both.
"""

import argparse
import csv
import hashlib
import io
import math
import sysconfig
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from paper.measure import manifest

CORPUS_MODULES = [
    "argparse.py",
    "collections/__init__.py",
    "dataclasses.py",
    "functools.py",
    "inspect.py",
    "json/decoder.py",
    "json/encoder.py",
    "pathlib.py",
    "subprocess.py",
    "textwrap.py",
    "typing.py",
]


@dataclass
class GPTConfig:
    block_size: int = 64
    vocab_size: int = 256
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    mlp_hidden: int = 512


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.n_head = cfg.n_head

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=False)
        self.c_proj = nn.Linear(cfg.mlp_hidden, cfg.n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(cfg.n_embd), CausalSelfAttention(cfg)
        self.ln_2, self.mlp = nn.LayerNorm(cfg.n_embd), MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        for module in self.modules():  # GPT-2's initialisation
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        pos = torch.arange(idx.shape[1])
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.T
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def param_counts(self):
        attn = sum(p.numel() for b in self.blocks for p in b.attn.parameters())
        mlp = sum(p.numel() for b in self.blocks for p in b.mlp.parameters())
        return {"attention": attn, "mlp": mlp, "total": sum(p.numel() for p in self.parameters())}


def load_corpus():
    root = Path(sysconfig.get_paths()["stdlib"])
    text = b"".join((root / m).read_bytes() for m in CORPUS_MODULES)
    return (
        torch.frombuffer(bytearray(text), dtype=torch.uint8).long(),
        hashlib.sha256(text).hexdigest(),
    )


def batch(data, cfg, size, gen):
    ix = torch.randint(len(data) - cfg.block_size - 1, (size,), generator=gen)
    x = torch.stack([data[i : i + cfg.block_size] for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + cfg.block_size] for i in ix])
    return x, y


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * p))


@torch.no_grad()
def evaluate(model, data, cfg, args):
    model.eval()
    gen = torch.Generator().manual_seed(1234)  # the same eval batches every time
    losses = [float(model(*batch(data, cfg, args.batch, gen))) for _ in range(args.eval_batches)]
    model.train()
    return sum(losses) / len(losses)


def train(cfg, seed, train_data, val_data, args):
    torch.manual_seed(seed)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    curve = []
    start = time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.eval_every == 0 or step == args.steps:
            curve.append((step, evaluate(model, val_data, cfg, args)))
        if step == args.steps:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        loss = model(*batch(train_data, cfg, args.batch, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - start
    tokens = args.steps * args.batch * cfg.block_size
    return model, curve, float(loss), tokens / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--min-lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--eval-batches", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data, corpus_sha = load_corpus()
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    base = GPTConfig()
    configs = {"step0_mlp4x": base, "step2_mlp5x": replace(base, mlp_hidden=5 * base.n_embd)}
    curves, summary = [], {}
    for name, cfg in configs.items():
        finals = []
        for seed in range(args.seeds):
            model, curve, train_loss, tok_s = train(cfg, seed, train_data, val_data, args)
            curves += [(name, seed, step, round(val, 5)) for step, val in curve]
            finals.append(
                {
                    "seed": seed,
                    "val_loss": curve[-1][1],
                    "train_loss": train_loss,
                    "tokens_per_s": tok_s,
                }
            )
            print(f"{name} seed={seed} val={curve[-1][1]:.4f} tok/s={tok_s:.0f}")
        counts = GPT(cfg).param_counts()
        summary[name] = {
            "config": asdict(cfg),
            "params": counts,
            "attn_to_mlp": counts["mlp"] / counts["attention"],
            "runs": finals,
        }
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["config", "seed", "step", "val_loss"])
    writer.writerows(curves)
    out = manifest.workspace_dir() / args.out
    manifest.write_text(out / "val_curves.csv", buf.getvalue())
    train_cfg = {k: v for k, v in vars(args).items() if k != "out"}
    manifest.write_json(out / "summary.json", {"train": train_cfg, "configs": summary})
    manifest.write_manifest(
        out,
        "ratio_cpu",
        "//paper/measure:tiny_ratio",
        ["paper/measure/tiny_ratio.py", "paper/measure/manifest.py"],
        ["torch"],
        extra={
            "corpus": {
                "source": "Python standard library modules",
                "modules": CORPUS_MODULES,
                "bytes": len(data),
                "sha256": corpus_sha,
            }
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
