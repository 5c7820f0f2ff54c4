"""Measures KV-cache bytes per token per layer: standard attention, MLA, KVSplice.

    bazel run //paper/measure:kv_cache_bytes -- --out results/paper/kv_cache

Each variant's attention front end is built at GPT-2 124M's width and decodes
T tokens one at a time, appending to its cache the way a decoder does. The
cache tensors are then measured (their storage bytes), never computed from a
formula; the formula is recorded next to them so the paper can show the error.

  standard   caches K and V:            2 * d_model values per token per layer
  mla        caches c = W_down x:       d_latent values
  kvsplice   caches compress(x * softplus(s) + t) of the latent: d_latent * ratio
"""

import argparse
import csv
import io
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from paper.measure import manifest


@dataclass
class CacheConfig:
    d_model: int = 768
    n_head: int = 12
    n_layer: int = 12
    d_latent: int = 256
    ratio: float = 0.5


class StandardKV(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.k = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.v = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.n_head = cfg.n_head

    def entry(self, x):  # x: [B, 1, d_model] -> K, V each [B, n_head, 1, head_dim]
        b, t, d = x.shape
        k = self.k(x).view(b, t, self.n_head, d // self.n_head).transpose(1, 2)
        v = self.v(x).view(b, t, self.n_head, d // self.n_head).transpose(1, 2)
        return [k.contiguous(), v.contiguous()]


class MLALatent(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.down = nn.Linear(cfg.d_model, cfg.d_latent, bias=False)

    def entry(self, x):  # [B, 1, d_latent]
        return [self.down(x)]


class KVSpliceLatent(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.down = nn.Linear(cfg.d_model, cfg.d_latent, bias=False)
        self.scale = nn.Parameter(torch.ones(cfg.d_latent))
        self.shift = nn.Parameter(torch.zeros(cfg.d_latent))
        d_comp = int(cfg.d_latent * cfg.ratio)
        self.compress = nn.Linear(cfg.d_latent, d_comp, bias=False)
        nn.init.orthogonal_(self.compress.weight)

    def entry(self, x):  # [B, 1, d_latent * ratio]
        c = self.down(x)
        return [self.compress(c * F.softplus(self.scale) + self.shift)]


VARIANTS = {"standard": StandardKV, "mla": MLALatent, "kvsplice": KVSpliceLatent}


def theory_values(cfg, variant):
    return {
        "standard": 2 * cfg.d_model,
        "mla": cfg.d_latent,
        "kvsplice": int(cfg.d_latent * cfg.ratio),
    }[variant]


@torch.no_grad()
def decode_cache(module, tokens, batch, d_model, dtype, seed):
    """Decodes `tokens` steps, appending each entry to the cache; returns the cache."""
    gen = torch.Generator().manual_seed(seed)
    module = module.to(dtype)
    cache = None
    for _ in range(tokens):
        x = torch.randn(batch, 1, d_model, generator=gen).to(dtype)
        new = module.entry(x)
        if cache is None:
            cache = new
        else:
            dim = 2 if new[0].dim() == 4 else 1
            cache = [torch.cat([c, n], dim=dim) for c, n in zip(cache, new, strict=True)]
    return cache


def storage_bytes(tensors):
    return sum(t.untyped_storage().nbytes() for t in tensors)


def measure(cfg, tokens_list, dtypes, batch, seed):
    rows = []
    for name, cls in VARIANTS.items():
        torch.manual_seed(seed)
        module = cls(cfg)
        for dtype_name in dtypes:
            dtype = getattr(torch, dtype_name)
            elt = torch.empty((), dtype=dtype).element_size()
            for tokens in tokens_list:
                start = time.perf_counter()
                cache = decode_cache(module, tokens, batch, cfg.d_model, dtype, seed)
                seconds = time.perf_counter() - start
                measured = storage_bytes(cache)
                per_token_layer = measured / (batch * tokens)
                theory = theory_values(cfg, name) * elt
                rows.append(
                    {
                        "variant": name,
                        "dtype": dtype_name,
                        "tokens": tokens,
                        "batch": batch,
                        "cache_shape": "+".join("x".join(map(str, c.shape)) for c in cache),
                        "measured_bytes": measured,
                        "bytes_per_token_per_layer": per_token_layer,
                        "theory_bytes_per_token_per_layer": theory,
                        "rel_error": abs(per_token_layer - theory) / theory,
                        "model_cache_bytes": measured * cfg.n_layer,
                        "decode_seconds": round(seconds, 3),
                    }
                )
                print(f"{name:9s} {dtype_name:8s} T={tokens:5d} {per_token_layer:8.1f} B/tok/layer")
    return rows


def to_csv(rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="result directory to write")
    parser.add_argument("--tokens", default="256,512,1024")
    parser.add_argument("--dtypes", default="float16,float32")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = CacheConfig()
    out = manifest.workspace_dir() / args.out
    rows = measure(
        cfg,
        [int(t) for t in args.tokens.split(",")],
        args.dtypes.split(","),
        args.batch,
        args.seed,
    )
    manifest.write_text(out / "cache_bytes.csv", to_csv(rows))
    manifest.write_json(out / "config.json", asdict(cfg))
    manifest.write_manifest(
        out,
        "kv_cache",
        "//paper/measure:kv_cache_bytes",
        ["paper/measure/kv_cache_bytes.py", "paper/measure/manifest.py"],
        ["torch"],
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
