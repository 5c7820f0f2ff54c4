"""Decode attention on the CPU: time per step against the KV-cache bytes it reads.

    bazel run //paper/measure:decode_cpu -- --out results/paper/decode_cpu

One decode step of one attention layer at GPT-2 124M shapes: a single new
query attends over a cache of T tokens. `standard` reads K and V
([B, H, T, D] each); `mla` reads only the latent c ([B, T, d_latent]) with the
up-projections absorbed into the query and the output, as MLA decodes. Each
step is timed interleaved with its baseline: a matrix-vector product over a
matrix of exactly the cache's size, the plainest memory-bound read BLAS does.
So the effective bandwidth (cache bytes / median step time) is compared with
what the same memory delivers to the same thread at the same moment, which
matters on a shared machine. A CPU reference only: the GPU decode kernel's
bandwidth is a separate measurement.
"""

import argparse
import csv
import io
import os
import statistics
import time

import torch
from torch.nn import functional as F

from paper.measure import manifest

D_MODEL, N_HEAD, D_LATENT = 768, 12, 256
HEAD_DIM = D_MODEL // N_HEAD


def median_seconds(fns, reps, warmup=2):
    """Median seconds of each of `fns`, timed in interleaved rounds."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, ts in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
    return [statistics.median(ts) for ts in times]


def gemv_baseline(nbytes):
    """A matrix-vector product reading a float32 matrix of `nbytes` bytes."""
    rows = nbytes // 4 // D_MODEL
    w = torch.ones(rows, D_MODEL)
    x = torch.ones(D_MODEL)
    return lambda: torch.mv(w, x)


def standard_step(batch, tokens, gen):
    q = torch.randn(batch, N_HEAD, 1, HEAD_DIM, generator=gen)
    k = torch.randn(batch, N_HEAD, tokens, HEAD_DIM, generator=gen)
    v = torch.randn(batch, N_HEAD, tokens, HEAD_DIM, generator=gen)
    nbytes = (k.numel() + v.numel()) * 4
    return (lambda: F.scaled_dot_product_attention(q, k, v)), nbytes


def mla_step(batch, tokens, gen):
    q = torch.randn(batch, N_HEAD, 1, HEAD_DIM, generator=gen)
    w_uk = torch.randn(N_HEAD, HEAD_DIM, D_LATENT, generator=gen) / HEAD_DIM**0.5
    w_uv = torch.randn(N_HEAD, D_LATENT, HEAD_DIM, generator=gen) / D_LATENT**0.5
    c = torch.randn(batch, tokens, D_LATENT, generator=gen)  # the cache
    scale = HEAD_DIM**-0.5

    def step():
        q_lat = (q @ w_uk).squeeze(2)  # [B, H, L]: W_uk absorbed into the query
        p = torch.softmax(torch.bmm(q_lat, c.transpose(1, 2)) * scale, dim=-1)  # [B, H, T]
        return torch.bmm(p, c).unsqueeze(2) @ w_uv  # [B, H, 1, D]: W_uv absorbed

    return step, c.numel() * 4


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tokens", default="2048,4096,8192,16384,32768")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    load_before = os.getloadavg()[0]
    rows = []
    for variant, make in (("standard", standard_step), ("mla", mla_step)):
        for batch in [int(b) for b in args.batches.split(",")]:
            for tokens in [int(t) for t in args.tokens.split(",")]:
                step, nbytes = make(batch, tokens, gen)
                baseline = gemv_baseline(nbytes)
                with torch.no_grad():
                    seconds, base_seconds = median_seconds([step, baseline], args.reps)
                gbps = nbytes / seconds / 1e9
                gemv = nbytes / base_seconds / 1e9
                rows.append(
                    {
                        "variant": variant,
                        "batch": batch,
                        "context_tokens": tokens,
                        "kv_bytes": nbytes,
                        "median_us": round(seconds * 1e6, 1),
                        "achieved_gbps": round(gbps, 3),
                        "gemv_gbps": round(gemv, 3),
                    }
                )
                print(
                    f"{variant:8s} B={batch} T={tokens:6d} {seconds * 1e6:10.1f} us "
                    f"{gbps:6.2f} GB/s (GEMV {gemv:6.2f} GB/s)"
                )
                del step, baseline
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out = manifest.workspace_dir() / args.out
    manifest.write_text(out / "decode_cpu.csv", buf.getvalue())
    config = {k: v for k, v in vars(args).items() if k != "out"}
    config.update({"d_model": D_MODEL, "n_head": N_HEAD, "d_latent": D_LATENT, "dtype": "float32"})
    manifest.write_json(out / "config.json", config)
    manifest.write_manifest(
        out,
        "decode_cpu",
        "//paper/measure:decode_cpu",
        ["paper/measure/decode_cpu.py", "paper/measure/manifest.py"],
        ["torch"],
        extra={"load_average_1min": {"before": load_before, "after": os.getloadavg()[0]}},
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
