"""A DDP smoke run: launch with torchrun, train a small bigram LM, check ranks agree.

  torchrun --standalone --nproc_per_node 2 experiments/ddp_check.py --out /tmp/ddp

Each rank trains through experiments/trainer.py on Shakespeare characters (gloo
on the CPU, NCCL on GPUs; a vocabulary of 84, so a step costs little beside
the processes' start) and writes rank<k>.json with a checksum of its final
weights; DistributedDataParallel must leave every rank with the same weights.
Rank 0 alone writes metrics.jsonl. experiments/trainer_test.py runs it with two
gloo processes.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from data.text import open_dataset
from experiments.bigram import BigramLM
from experiments.distributed import setup_distributed
from experiments.trainer import TrainConfig, Trainer

DATASET = "shakespeare_char"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    info, device = setup_distributed(args.device)
    ds = open_dataset(DATASET)
    torch.manual_seed(0)  # identical initial weights on every rank
    model = BigramLM(vocab=ds.meta["vocab_size"])
    cfg = TrainConfig(
        max_iters=args.iters,
        batch_size=8,
        grad_accum=2,
        lr=1e-2,
        min_lr=1e-3,
        warmup_iters=2,
        eval_interval=args.iters,
        eval_iters=2,
        device=device,
        progress=False,
        tokens_per_sample=32,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    os.makedirs(args.out, exist_ok=True)
    trainer = Trainer(
        model=model,
        optimizer=opt,
        get_batch=lambda split, g: ds.get_batch(split, cfg.batch_size, 32, g, device),
        cfg=cfg,
        metrics_path=os.path.join(args.out, "metrics.jsonl"),
        dist_info=info,
        step_name="ddp",
    )
    res = trainer.fit()
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    with open(os.path.join(args.out, f"rank{info.rank}.json"), "w") as f:
        json.dump(
            {
                "rank": info.rank,
                "world_size": info.world_size,
                "checksum": checksum,
                "first_loss": res["first_loss"],
                "final_train_loss": res["final_train_loss"],
                "val_loss": res["val_loss"],
                "tokens": res["tokens"],
            },
            f,
        )
    if info.enabled:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
