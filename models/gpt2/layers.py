"""The building blocks every GPT-2 class is made of: attention, MLPs, a block.

Shapes: B batch, T tokens, C = n_embd, H heads, D = C / H head width. Every
attention module takes `(x, cache)` and returns `(y, cache)`, where `cache` is
a dict of tensors with the token axis second to last for per-head tensors
([B, H, T, D]) or in the middle for latents ([B, T, d]); only what the module
needs to decode the next token is kept in it, so cache bytes can be read off
the tensors themselves (see `cache_bytes`).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- helpers


def cache_bytes(cache, parts=None):
    """Bytes held by the tensors of a model cache (as returned with use_cache=True).

    `parts` limits the sum to those parts of each layer's cache ("attn": the KV
    cache; "mlp": the cross-token MLP's state); None counts everything.
    """
    total = 0
    for layer in cache["layers"]:
        for name, part in layer.items():
            if parts is not None and name not in parts:
                continue
            for tensor in part.values():
                total += tensor.numel() * tensor.element_size()
    return total


def append(cache, name, new, dim):
    """Concatenates `new` to `cache[name]` along `dim` (the token axis) and returns all of it."""
    if cache is None:
        return new
    if name in cache:
        new = torch.cat([cache[name], new], dim=dim)
    cache[name] = new
    return new


def rope(x, offset, theta):
    """Rotary position embedding of x [B, H, T, D] for positions offset..offset+T-1."""
    d = x.size(-1)
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d))
    pos = torch.arange(offset, offset + x.size(-2), device=x.device, dtype=torch.float32)
    angle = torch.outer(pos, inv)  # [T, D/2]
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2)


def causal_mask(t, total, device, band=None):
    """True where query i (of the last t of `total` positions) may see key j."""
    i = torch.arange(total - t, total, device=device)[:, None]
    j = torch.arange(total, device=device)[None, :]
    keep = j <= i
    if band is not None:
        keep = keep & (i - j < band)
    return keep


# ---------------------------------------------------------------- attention core


class RACTGate(nn.Module):
    """RA-CT: a per-head gate sigmoid(stat * scale + bias) from attention-row statistics.

    stat is one of topk (mass of the k largest weights), max, entropy or rms of
    the row. bias starts at 2.0, so the gate starts near pass-through. The gate
    is mixed as (1 - alpha) x + alpha (x * gate), on the head output ("output")
    or on the attention logits as a per-row temperature ("weights").
    """

    def __init__(self, config):
        super().__init__()
        self.stat, self.k, self.alpha, self.mode = (
            config.ract_stat,
            config.ract_k,
            config.ract_alpha,
            config.ract_apply,
        )
        self.scale = nn.Parameter(torch.ones(config.n_head))
        self.bias = nn.Parameter(torch.full((config.n_head,), 2.0))

    def extra_repr(self):
        return f"stat={self.stat}, k={self.k}, alpha={self.alpha}, apply={self.mode}"

    def forward(self, att):
        """Gate [B, H, t, 1] from attention weights att [B, H, t, T]."""
        if self.stat == "topk":
            s = att.topk(min(self.k, att.size(-1)), dim=-1).values.sum(-1)
        elif self.stat == "max":
            s = att.amax(-1)
        elif self.stat == "entropy":
            s = -(att * torch.log(att.clamp_min(1e-9))).sum(-1)
        else:  # rms
            s = att.pow(2).mean(-1).sqrt()
        g = torch.sigmoid(s * self.scale[:, None] + self.bias[:, None])
        return g.unsqueeze(-1)

    def mix(self, x, gate):
        return (1 - self.alpha) * x + self.alpha * (x * gate)


class AttentionCore(nn.Module):
    """softmax(Q K^T / sqrt(D)) V with the optional reciprocal path and RA-CT gate.

    Reciprocal attention (RA) scores query i against key j with k_i . q_j
    (softmax(K Q^T) V), within a band of `ra_band` tokens. With a fixed mix the
    output is (1 - ra_alpha) standard + ra_alpha reciprocal; learned, a per-layer
    logit a gives p = sigmoid(a) and a straight-through hard choice between them.
    """

    def __init__(self, config, ra=False):
        super().__init__()
        self.ra = ra
        self.ra_learned, self.ra_alpha, self.ra_band = (
            config.ra_learned,
            config.ra_alpha,
            config.ra_band,
        )
        if ra and self.ra_learned:
            self.ra_logit = nn.Parameter(torch.tensor(-1.0))  # p = 0.27: starts standard
        self.gate = RACTGate(config) if config.ract else None

    def extra_repr(self):
        if not self.ra:
            return ""
        mode = "learned" if self.ra_learned else f"alpha={self.ra_alpha}"
        return f"reciprocal={mode}, band={self.ra_band}"

    def forward(self, q, k, v, q_all=None):
        """q [B,H,t,D] new queries; k, v [B,H,T,D] all keys; q_all [B,H,T,D] all queries (RA)."""
        t, total, scale = q.size(-2), k.size(-2), 1.0 / math.sqrt(q.size(-1))
        scores = (q @ k.transpose(-2, -1)) * scale
        hidden = ~causal_mask(t, total, q.device)
        att = F.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1)
        gate = self.gate(att) if self.gate is not None else None
        if gate is not None and self.gate.mode == "weights":  # gate as a per-row temperature
            scores = scores * self.gate.mix(torch.ones_like(gate), gate)
            att = F.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1)
        y = att @ v
        if self.ra:
            k_own = k[..., total - t :, :]  # the key of each new query's own position
            rec = (k_own @ q_all.transpose(-2, -1)) * scale
            rec = rec.masked_fill(~causal_mask(t, total, q.device, self.ra_band), float("-inf"))
            y_rec = F.softmax(rec, dim=-1) @ v
            if self.ra_learned:
                p = torch.sigmoid(self.ra_logit)
                g = (p > 0.5).to(p.dtype) + p - p.detach()  # straight-through estimator
                y = g * y_rec + (1 - g) * y
            else:
                y = (1 - self.ra_alpha) * y + self.ra_alpha * y_rec
        if gate is not None and self.gate.mode == "output":
            y = self.gate.mix(y, gate)
        return y


def split_heads(x, n_head):
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


def merge_heads(y):
    B, H, T, D = y.shape
    return y.transpose(1, 2).reshape(B, T, H * D)


# ---------------------------------------------------------------- attention modules


class CausalSelfAttention(nn.Module):
    """Standard multi-head attention; caches K and V ([B, H, T, D] each), and Q with RA."""

    def __init__(self, config, ra=False):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.core = AttentionCore(config, ra=ra)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, cache=None):
        q, k, v = (split_heads(z, self.n_head) for z in self.c_attn(x).split(x.size(-1), dim=2))
        k, v = append(cache, "k", k, 2), append(cache, "v", v, 2)
        q_all = append(cache, "q", q, 2) if self.core.ra else None
        y = self.core(q, k, v, q_all)
        return self.resid_dropout(self.c_proj(merge_heads(y)))


class KVSplice(nn.Module):
    """Learned affine transform plus low-rank compression of an attention latent.

    encode: z = (c * softplus(s) + t) W^T, W [d_c, d] with orthonormal rows;
    decode: c_hat = (z W - t) / softplus(s), the expansion tied to W. Only z is
    cached. s starts at 1 (softplus(1) = 1.3133) and t at 0.
    """

    def __init__(self, d, d_c):
        super().__init__()
        self.s = nn.Parameter(torch.ones(d))
        self.t = nn.Parameter(torch.zeros(d))
        self.W = nn.Parameter(torch.empty(d_c, d))
        if not self.W.is_meta:
            nn.init.orthogonal_(self.W)

    def extra_repr(self):
        return f"{self.W.size(1)} -> {self.W.size(0)}"

    def encode(self, c):
        return (c * F.softplus(self.s) + self.t) @ self.W.t()

    def decode(self, z):
        return (z @ self.W - self.t) / F.softplus(self.s)


class LatentAttention(nn.Module):
    """Multi-head latent attention (MLA), optionally with KVSplice on the latent.

    c = W_down x [B, T, d_latent]; [K, V] = W_up c; RoPE on Q and K. The cache holds
    c only (or, with KVSplice, the compressed z = encode(c)); K and V are rebuilt
    from it. `split_kv=True` (KV2) uses separate K and V latents, each with its
    own KVSplice, and caches both compressed latents.
    """

    def __init__(self, config, ra=False, splice=False, split_kv=False):
        super().__init__()
        C, d = config.n_embd, config.d_latent
        self.n_head, self.theta, self.split_kv = config.n_head, config.rope_theta, split_kv
        self.q_proj = nn.Linear(C, C, bias=config.bias)
        if split_kv:
            self.k_down = nn.Linear(C, d, bias=config.bias)
            self.v_down = nn.Linear(C, d, bias=config.bias)
            self.k_up = nn.Linear(d, C, bias=config.bias)
            self.v_up = nn.Linear(d, C, bias=config.bias)
            self.k_splice = KVSplice(d, config.d_compressed)
            self.v_splice = KVSplice(d, config.d_compressed)
        else:
            self.kv_down = nn.Linear(C, d, bias=config.bias)
            self.kv_up = nn.Linear(d, 2 * C, bias=config.bias)
            self.splice = KVSplice(d, config.d_compressed) if splice else None
        self.c_proj = nn.Linear(C, C, bias=config.bias)
        self.core = AttentionCore(config, ra=ra)
        self.resid_dropout = nn.Dropout(config.dropout)

    def latents_to_kv(self, x, cache):
        if self.split_kv:
            zk = append(cache, "zk", self.k_splice.encode(self.k_down(x)), 1)
            zv = append(cache, "zv", self.v_splice.encode(self.v_down(x)), 1)
            return self.k_up(self.k_splice.decode(zk)), self.v_up(self.v_splice.decode(zv))
        c = self.kv_down(x)
        if self.splice is not None:
            c = self.splice.decode(append(cache, "z", self.splice.encode(c), 1))
        else:
            c = append(cache, "c", c, 1)
        return self.kv_up(c).split(x.size(-1), dim=2)

    def forward(self, x, cache=None):
        latent = next((cache[n] for n in ("c", "z", "zk") if cache and n in cache), None)
        total_before = 0 if latent is None else latent.size(1)
        k, v = self.latents_to_kv(x, cache)
        q = rope(split_heads(self.q_proj(x), self.n_head), total_before, self.theta)
        k = rope(split_heads(k, self.n_head), 0, self.theta)
        v = split_heads(v, self.n_head)
        q_all = append(cache, "q", q, 2) if self.core.ra else None
        y = self.core(q, k, v, q_all)
        return self.resid_dropout(self.c_proj(merge_heads(y)))


# ---------------------------------------------------------------- MLPs


class MLP(nn.Module):
    """GELU MLP of width mlp_dim, with the two optional RATIO mechanisms.

    attention gate: h = gelu(W_fc x) * sigmoid(W_gate a), a the block's attention
    output. cross-token context: W_ctx mean(x_1..x_i) is added before the GELU;
    the running sum and count are its cache (constant in T).
    """

    def __init__(self, config):
        super().__init__()
        C, H = config.n_embd, config.mlp_dim
        self.c_fc = nn.Linear(C, H, bias=config.bias)
        self.c_proj = nn.Linear(H, C, bias=config.bias)
        self.gate = nn.Linear(C, H, bias=config.bias) if config.mlp_attn_gate else None
        self.ctx = nn.Linear(C, H, bias=config.bias) if config.mlp_cross_token else None
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, a, cache=None):
        h = self.c_fc(x)
        if self.ctx is not None:
            csum = x.cumsum(dim=1)
            count = torch.arange(1, x.size(1) + 1, device=x.device, dtype=x.dtype)
            if cache is not None:
                if "sum" in cache:
                    csum = csum + cache["sum"]
                    count = count + cache["count"]
                cache["sum"], cache["count"] = csum[:, -1:], count[-1:]
            h = h + self.ctx(csum / count[None, :, None])
        h = F.gelu(h)
        if self.gate is not None:
            h = h * torch.sigmoid(self.gate(a))
        return self.dropout(self.c_proj(h))


class MLPSplice(nn.Module):
    """MLP through the latent: d_model -> d_latent -> 4 d_latent -> d_latent -> d_model.

    With `mlp_splice_tied` the last projection is the transpose of the first.
    """

    def __init__(self, config):
        super().__init__()
        if config.mlp_attn_gate or config.mlp_cross_token:
            raise ValueError(
                "MLPSplice does not implement mlp_attn_gate or mlp_cross_token; "
                "set both to False for a class with feature 'mlpsplice'"
            )
        C, d = config.n_embd, config.d_latent
        self.down = nn.Linear(C, d, bias=False)
        self.c_fc = nn.Linear(d, 4 * d, bias=config.bias)
        self.c_proj = nn.Linear(4 * d, d, bias=config.bias)
        self.tied = config.mlp_splice_tied
        self.up = None if self.tied else nn.Linear(d, C, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, a, cache=None):
        h = self.c_proj(F.gelu(self.c_fc(self.down(x))))
        h = h @ self.down.weight if self.tied else self.up(h)
        return self.dropout(h)


# ---------------------------------------------------------------- block


class Block(nn.Module):
    def __init__(self, config, attn, mlp):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = attn
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = mlp

    def forward(self, x, cache=None):
        a = self.attn(self.ln_1(x), None if cache is None else cache.setdefault("attn", {}))
        x = x + a
        x = x + self.mlp(self.ln_2(x), a, None if cache is None else cache.setdefault("mlp", {}))
        return x
