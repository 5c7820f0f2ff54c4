"""The measurement programs measure what they claim, at sizes a test can afford."""

import torch

from paper.measure import decode_cpu, kv_cache_bytes, prune_digits, tiny_ratio


def test_cache_bytes_match_theory_and_scale_linearly():
    cfg = kv_cache_bytes.CacheConfig()
    rows = kv_cache_bytes.measure(cfg, [4, 8, 16], ["float16"], batch=2, seed=0)
    by_variant = {}
    for r in rows:
        assert r["rel_error"] <= 0.05, r
        by_variant.setdefault(r["variant"], []).append(r["measured_bytes"] / r["tokens"])
    for per_token in by_variant.values():
        assert max(per_token) == min(per_token)  # linear in tokens
    std, mla, splice = (by_variant[v][0] for v in ("standard", "mla", "kvsplice"))
    assert std / mla == 6 and std / splice == 12


def test_cache_shapes_are_the_latents():
    cfg = kv_cache_bytes.CacheConfig()
    cache = kv_cache_bytes.decode_cache(
        kv_cache_bytes.KVSpliceLatent(cfg), 5, 3, cfg.d_model, torch.float32, 0
    )
    assert [tuple(c.shape) for c in cache] == [(3, 5, 128)]


def test_pruning_masks_reach_the_exact_sparsity():
    torch.manual_seed(0)
    weights = [torch.randn(30, 20), torch.randn(10, 30)]
    masks = [torch.ones_like(w) for w in weights]
    gen = torch.Generator().manual_seed(0)
    for method in ("magnitude", "random"):
        prune_digits.update_masks(weights, masks, 0.7, method, gen)
        kept = sum(int(m.sum()) for m in masks)
        assert kept == round(0.3 * 900)
    # Magnitude keeps the largest weights.
    masks = [torch.ones_like(w) for w in weights]
    prune_digits.update_masks(weights, masks, 0.5, "magnitude", gen)
    kept = torch.cat([w[m.bool()].abs() for w, m in zip(weights, masks, strict=True)])
    dropped = torch.cat([w[~m.bool()].abs() for w, m in zip(weights, masks, strict=True)])
    assert kept.min() >= dropped.max()


def test_cubic_ramp():
    assert prune_digits.cubic_sparsity(0, 0.9, 10, 20) == 0
    assert abs(prune_digits.cubic_sparsity(15, 0.8, 10, 20) - 0.1) < 1e-12
    assert prune_digits.cubic_sparsity(99, 0.9, 10, 20) == 0.9


def test_tiny_gpt_lowers_its_loss():
    cfg = tiny_ratio.GPTConfig(block_size=16, n_layer=1, n_embd=32, n_head=2, mlp_hidden=64)
    data = torch.tensor(list(b"abcabcabdabcabcabd" * 50))
    torch.manual_seed(0)
    model = tiny_ratio.GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        loss = model(*tiny_ratio.batch(data, cfg, 8, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_ratio_configs_hit_their_mlp_ratios():
    base = tiny_ratio.GPTConfig()
    four = tiny_ratio.GPT(base).param_counts()
    five = tiny_ratio.GPT(tiny_ratio.GPTConfig(mlp_hidden=5 * base.n_embd)).param_counts()
    assert four["mlp"] / four["attention"] == 2.0
    assert five["mlp"] / five["attention"] == 2.5


def test_decode_steps_compute_attention_and_count_cache_bytes():
    gen = torch.Generator().manual_seed(0)
    step, nbytes = decode_cpu.standard_step(2, 64, gen)
    assert step().shape == (2, decode_cpu.N_HEAD, 1, decode_cpu.HEAD_DIM)
    assert nbytes == 2 * 2 * 64 * decode_cpu.D_MODEL * 4
    step, nbytes = decode_cpu.mla_step(2, 64, gen)
    assert step().shape == (2, decode_cpu.N_HEAD, 1, decode_cpu.HEAD_DIM)
    assert nbytes == 2 * 64 * decode_cpu.D_LATENT * 4
