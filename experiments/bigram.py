"""BigramLM: the smallest language model the trainer trains.

Next-token logits from the current token alone, through a low-rank table. It
has the (logits, loss) interface of the GPT-2 classes, so the trainer, the
DDP smoke run (experiments/ddp_check.py) and the tests of the runner and the
trainer train it in milliseconds without depending on models/gpt2.
"""

import torch.nn as nn
import torch.nn.functional as F


class BigramLM(nn.Module):
    """Next-token logits from the current token through a low-rank table."""

    def __init__(self, vocab: int = 50304, dim: int = 32):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.out = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx, targets=None):
        logits = self.out(self.emb(idx))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
