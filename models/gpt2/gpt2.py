"""GPT2: the nanoGPT-style baseline, and the trunk every GPT2_* class derives from.

A variant overrides `make_attention` / `make_mlp` and lists the mechanisms it
implements in FEATURES; everything else (embeddings, blocks, loss, the KV
cache, generation) lives here once.

    logits, loss = model(idx, targets)
    logits, loss, cache = model(idx, use_cache=True)           # prefill
    logits, loss, cache = model(next_idx, cache=cache, use_cache=True)  # one step
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.gpt2.config import GPT2Config, check_features
from models.gpt2.layers import MLP, Block, CausalSelfAttention


class GPT2(nn.Module):
    FEATURES = frozenset()
    USES_WPE = True  # learned absolute positions; RoPE classes turn this off

    def __init__(self, config: GPT2Config):
        super().__init__()
        if not isinstance(config, GPT2Config):
            raise TypeError(f"{type(self).__name__} takes a GPT2Config first, got {config!r}")
        check_features(type(self).__name__, self.FEATURES, config)
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=_embedding(config.vocab_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(
                    Block(config, self.make_attention(config, i), self.make_mlp(config, i))
                    for i in range(config.n_layer)
                ),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        if self.USES_WPE:
            self.transformer["wpe"] = _embedding(config.block_size, config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # scaled init of residual projections
            if name.endswith("c_proj.weight") and not p.is_meta:
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def make_attention(self, config, layer):
        return CausalSelfAttention(config)

    def make_mlp(self, config, layer):
        return MLP(config)

    def _init_weights(self, module):
        if any(p.is_meta for p in module.parameters(recurse=False)):
            return  # no values to initialize (and meta's normal_ imports the compiler)
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding=True):
        """Parameter count; by default without the position embedding (as nanoGPT)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and self.USES_WPE:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx, targets=None, cache=None, use_cache=False):
        B, t = idx.shape
        start = cache["pos"] if cache is not None else 0
        if start + t > self.config.block_size:
            raise ValueError(
                f"sequence of {start + t} tokens exceeds block_size={self.config.block_size}"
            )
        if use_cache and cache is None:
            cache = {"pos": 0, "layers": [{} for _ in self.transformer.h]}
        x = self.transformer.wte(idx)
        if self.USES_WPE:
            x = x + self.transformer.wpe(torch.arange(start, start + t, device=idx.device))
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache["layers"][i] if use_cache else None)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        if not use_cache:
            return logits, loss
        cache["pos"] = start + t
        return logits, loss, cache

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Samples tokens one at a time through the KV cache."""
        logits, _, cache = self(idx, use_cache=True)
        for _ in range(max_new_tokens):
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            nxt = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
            idx = torch.cat((idx, nxt), dim=1)
            if idx.size(1) >= self.config.block_size:
                break
            logits, _, cache = self(nxt, cache=cache, use_cache=True)
        return idx


def _embedding(num, dim):
    """nn.Embedding without its own init (GPT2._init_weights sets it), so building on
    the meta device does not pull in the compiler stack that meta's normal_ imports."""
    return nn.Embedding(num, dim, _weight=torch.empty(num, dim))
