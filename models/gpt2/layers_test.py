import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.gpt2 import zoo
from models.gpt2.config import GPT2Config, preset
from models.gpt2.layers import (
    MLP,
    AttentionCore,
    Block,
    CausalSelfAttention,
    KVSplice,
    LatentAttention,
    MLPSplice,
    RACTGate,
    append,
    causal_mask,
    rope,
)


def test_causal_mask_with_band_and_offset():
    m = causal_mask(2, 5, "cpu", band=2)  # queries at positions 3 and 4
    assert m.tolist() == [
        [False, False, True, True, False],
        [False, False, False, True, True],
    ]


def test_rope_preserves_norm_and_is_relative():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    assert torch.allclose(rope(q, 5, 1e4).norm(), q.norm(), atol=1e-5)
    a = (rope(q, 7, 1e4) * rope(k, 3, 1e4)).sum()
    b = (rope(q, 14, 1e4) * rope(k, 10, 1e4)).sum()
    assert torch.allclose(a, b, atol=1e-5)


def test_reciprocal_attention_uses_k_q_transpose():
    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=16, n_head=1, ra_alpha=1.0, ra_band=64)
    core = AttentionCore(cfg, ra=True)
    q, k, v = (torch.randn(1, 1, 4, 16) for _ in range(3))
    scores = (k @ q.transpose(-2, -1)) / 4.0  # k_i . q_j
    scores = scores.masked_fill(~causal_mask(4, 4, "cpu"), float("-inf"))
    expected = F.softmax(scores, -1) @ v
    torch.testing.assert_close(core(q, k, v, q_all=q), expected)


def test_learned_ra_starts_standard_and_gets_a_gradient():
    cfg = GPT2Config(n_embd=16, n_head=1, ra_learned=True)
    core = AttentionCore(cfg, ra=True)
    plain = AttentionCore(GPT2Config(n_embd=16, n_head=1))
    q, k, v = (torch.randn(1, 1, 4, 16) for _ in range(3))
    y = core(q, k, v, q_all=q)
    torch.testing.assert_close(y, plain(q, k, v))
    y.sum().backward()
    assert core.ra_logit.grad is not None and core.ra_logit.grad != 0


def test_ract_gate_starts_near_pass_through():
    gate = RACTGate(GPT2Config(n_embd=16, n_head=2, ract=True))
    att = F.softmax(torch.randn(1, 2, 3, 3), -1)
    g = gate(att)
    assert g.shape == (1, 2, 3, 1)
    assert (g > 0.88).all()  # sigmoid(stat + 2) with stat in [0, 1]


@pytest.mark.parametrize("stat", ["topk", "max", "entropy", "rms"])
def test_ract_statistics_change_the_output(stat):
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 6, 8) for _ in range(3))
    base = AttentionCore(GPT2Config(n_embd=16, n_head=2))(q, k, v)
    cfg = GPT2Config(n_embd=16, n_head=2, ract=True, ract_stat=stat, ract_alpha=0.5)
    assert not torch.allclose(AttentionCore(cfg)(q, k, v), base)


def test_kvsplice_init_and_roundtrip():
    splice = KVSplice(8, 8)
    assert math.isclose(F.softplus(splice.s)[0].item(), 1.3133, abs_tol=1e-4)
    c = torch.randn(2, 5, 8)
    torch.testing.assert_close(splice.decode(splice.encode(c)), c, atol=1e-5, rtol=1e-5)
    half = KVSplice(256, 128)
    assert half.encode(torch.randn(1, 3, 256)).shape == (1, 3, 128)
    torch.testing.assert_close(half.W @ half.W.t(), torch.eye(128), atol=1e-5, rtol=0)


def test_mlpsplice_has_6_to_9_times_fewer_parameters():
    cfg = preset("124m")
    standard = 2 * cfg.n_embd * cfg.mlp_dim
    splice = sum(p.numel() for p in MLPSplice(cfg).parameters() if p.dim() == 2)
    assert 6 <= standard / splice <= 9


def test_gpt2_124m_has_124m_parameters():
    with torch.device("meta"):
        model = zoo.get_class("GPT2")(preset("124m"))
    assert model.get_num_params() == 123_689_472
    assert model.get_num_params(non_embedding=False) == 124_475_904


def test_get_class_unknown_lists_known():
    with pytest.raises(ValueError, match="unknown model class 'GPT3'.*GPT2_MLA"):
        zoo.get_class("GPT3")


def test_generate_uses_the_cache():
    torch.manual_seed(0)
    model = zoo.get_class("GPT2_MLA_KV")(
        GPT2Config(n_layer=1, n_head=2, n_embd=64, block_size=32, vocab_size=50, d_latent=32)
    )
    out = model.generate(torch.zeros(1, 3, dtype=torch.long), max_new_tokens=5)
    assert out.shape == (1, 8)


def test_kvsplice_transform_learns():
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=1, n_head=2, n_embd=64, block_size=32, vocab_size=64, d_latent=32)
    model = zoo.get_class("GPT2_MLA_KV")(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.randint(0, 64, (4, 17))
    for _ in range(5):
        _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad()
    splice = model.transformer.h[0].attn.splice
    assert not torch.allclose(splice.s, torch.ones_like(splice.s))
    assert not torch.allclose(splice.t, torch.zeros_like(splice.t))


def test_append_keeps_the_cache_and_returns_everything_so_far():
    a, b = torch.ones(1, 2, 3), torch.zeros(1, 1, 3)
    assert append(None, "c", a, 1) is a  # no cache: nothing kept
    cache = {}
    assert append(cache, "c", a, 1) is a and cache["c"] is a
    assert torch.equal(append(cache, "c", b, 1), torch.cat([a, b], 1))
    assert cache["c"].shape == (1, 3, 3)


def test_rope_rotates_each_pair_by_position_times_its_frequency():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 3, 8)
    theta, offset = 100.0, 5
    out = rope(x, offset, theta)
    for t in range(3):
        for i in range(4):
            angle = torch.tensor((offset + t) / theta ** (2 * i / 8))
            x1, x2 = x[..., t, 2 * i], x[..., t, 2 * i + 1]
            torch.testing.assert_close(out[..., t, 2 * i], x1 * angle.cos() - x2 * angle.sin())
            torch.testing.assert_close(out[..., t, 2 * i + 1], x1 * angle.sin() + x2 * angle.cos())
    # The offset is the position of the first row: rows of a longer sequence match.
    longer = torch.cat([torch.randn(1, 2, offset, 8), x], dim=2)
    torch.testing.assert_close(rope(longer, 0, theta)[..., offset:, :], out)


def test_fixed_reciprocal_mix_and_band():
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 1, 6, 16) for _ in range(3))
    alpha, band = 0.3, 2
    core = AttentionCore(GPT2Config(n_embd=16, n_head=1, ra_alpha=alpha, ra_band=band), ra=True)
    standard = AttentionCore(GPT2Config(n_embd=16, n_head=1))(q, k, v)
    rec = (k @ q.transpose(-2, -1)) / 4.0
    rec = rec.masked_fill(~causal_mask(6, 6, "cpu", band=band), float("-inf"))
    expected = (1 - alpha) * standard + alpha * (F.softmax(rec, -1) @ v)
    torch.testing.assert_close(core(q, k, v, q_all=q), expected)


def test_ract_on_weights_scales_the_logits_per_row():
    torch.manual_seed(2)
    q, k, v = (torch.randn(1, 2, 5, 8) for _ in range(3))
    cfg = GPT2Config(n_embd=16, n_head=2, ract=True, ract_apply="weights", ract_alpha=0.4)
    core = AttentionCore(cfg)
    with torch.no_grad():
        core.gate.bias.copy_(torch.tensor([-1.0, 0.5]))
    hidden = ~causal_mask(5, 5, "cpu")
    scores = (q @ k.transpose(-2, -1)) / 8**0.5
    gate = core.gate(F.softmax(scores.masked_fill(hidden, float("-inf")), -1))
    temperature = 0.6 + 0.4 * gate
    expected = F.softmax((scores * temperature).masked_fill(hidden, float("-inf")), -1) @ v
    torch.testing.assert_close(core(q, k, v), expected)


def test_mlp_gate_and_cross_token_context_follow_their_formulas():
    torch.manual_seed(3)
    cfg = GPT2Config(n_embd=16, n_head=2, mlp_ratio=4.0, mlp_attn_gate=True, mlp_cross_token=True)
    mlp = MLP(cfg)
    x, a = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    mean = x.cumsum(1) / torch.arange(1, 6)[None, :, None]
    h = F.gelu(mlp.c_fc(x) + mlp.ctx(mean)) * torch.sigmoid(mlp.gate(a))
    torch.testing.assert_close(mlp(x, a), mlp.c_proj(h))


def test_mlpsplice_runs_through_the_latent_tied_or_not():
    torch.manual_seed(4)
    x = torch.randn(1, 3, 64)
    tied = MLPSplice(GPT2Config(n_embd=64, n_head=2, d_latent=16))
    h = tied.c_proj(F.gelu(tied.c_fc(tied.down(x))))
    torch.testing.assert_close(tied(x, None), h @ tied.down.weight)
    assert tied.up is None
    untied = MLPSplice(GPT2Config(n_embd=64, n_head=2, d_latent=16, mlp_splice_tied=False))
    h = untied.c_proj(F.gelu(untied.c_fc(untied.down(x))))
    torch.testing.assert_close(untied(x, None), untied.up(h))
    with pytest.raises(ValueError, match="MLPSplice does not implement mlp_attn_gate"):
        MLPSplice(GPT2Config(n_embd=64, n_head=2, mlp_cross_token=True))


DECODE_CONFIG = dict(n_embd=32, n_head=2, d_latent=16, ra_band=3)


@pytest.mark.parametrize(
    "make, cached",
    [
        (lambda c: CausalSelfAttention(c), {"k", "v"}),
        (lambda c: CausalSelfAttention(c, ra=True), {"k", "v", "q"}),
        (lambda c: LatentAttention(c), {"c"}),
        (lambda c: LatentAttention(c, ra=True, splice=True), {"z", "q"}),
        (lambda c: LatentAttention(c, splice=True, split_kv=True), {"zk", "zv"}),
        (lambda c: MLP(c.with_options(mlp_cross_token=True)), {"sum", "count"}),
    ],
    ids=["attention", "ra", "mla", "mla-ra-kvsplice", "kv2", "mlp-cross-token"],
)
def test_each_module_decodes_through_its_cache_as_the_full_forward(make, cached):
    """Prefill then one token at a time gives the full forward's outputs, with
    learned KVSplice parameters moved off their initial values; the cache holds
    what the module documents, and only that."""
    torch.manual_seed(5)
    module = make(GPT2Config(**DECODE_CONFIG))
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith((".s", ".t")):
                p.copy_(torch.randn_like(p))
    x = torch.randn(2, 7, 32)
    call = (lambda x, c: module(x, x, c)) if isinstance(module, MLP) else module
    with torch.no_grad():
        full = call(x, None)
        cache = {}
        pieces = [call(x[:, :3], cache)] + [call(x[:, t : t + 1], cache) for t in range(3, 7)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-4, atol=1e-5)
    assert set(cache) == cached


def test_block_hands_its_attention_output_to_the_mlp():
    torch.manual_seed(6)
    cfg = GPT2Config(n_embd=16, n_head=2, mlp_attn_gate=True)
    block = Block(cfg, CausalSelfAttention(cfg), MLP(cfg))
    x = torch.randn(1, 4, 16)
    a = block.attn(block.ln_1(x))
    torch.testing.assert_close(block(x), x + a + block.mlp(block.ln_2(x + a), a))


CLASSES = zoo.discover()
TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=64)


def tiny(name, **options):
    cls = CLASSES[name]
    return cls(GPT2Config(**TINY, **({"d_latent": 16} if "mla" in cls.FEATURES else {}), **options))


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_each_class_builds_the_mechanisms_it_declares(name):
    features, model = CLASSES[name].FEATURES, tiny(name)
    modules = list(model.modules())
    kinds = {type(m).__name__ for m in modules}
    assert any(isinstance(m, AttentionCore) and m.ra for m in modules) == ("ra" in features)
    assert ("LatentAttention" in kinds) == ("mla" in features)
    assert ("KVSplice" in kinds) == ("kvsplice" in features)
    assert ("MLPSplice" in kinds) == ("mlpsplice" in features)
    split = any(isinstance(m, LatentAttention) and m.split_kv for m in modules)
    assert split == name.endswith(("_KV2", "_KV2M"))  # KV2: separate K and V latents
    assert ("wpe" in model.transformer) == ("mla" not in features)  # RoPE instead


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_the_bias_option_reaches_every_layer(name, bias):
    for path, m in tiny(name, bias=bias).named_modules():
        if isinstance(m, nn.Linear | nn.LayerNorm):
            never = path == "lm_head" or path.endswith((".down", ".up"))  # bias-free by design
            assert (m.bias is not None) == (bias and not never), path


def test_a_core_without_reciprocal_attention_has_no_ra_parameter():
    learned = GPT2Config(n_embd=16, n_head=2, ra_learned=True)
    assert [n for n, _ in AttentionCore(learned, ra=False).named_parameters()] == []
    assert [n for n, _ in AttentionCore(learned, ra=True).named_parameters()] == ["ra_logit"]


def test_modules_name_their_mechanisms_when_printed():
    cfg = GPT2Config(n_embd=16, n_head=2, ract=True, ract_stat="max", ract_k=3, ra_band=9)
    assert repr(RACTGate(cfg)).endswith("(stat=max, k=3, alpha=0.2, apply=output)")
    assert "reciprocal=alpha=0.3, band=9" in repr(AttentionCore(cfg, ra=True))
    learned = GPT2Config(n_embd=16, n_head=2, ra_learned=True, ra_band=9)
    assert "reciprocal=learned, band=9" in repr(AttentionCore(learned, ra=True))
    assert "reciprocal" not in repr(AttentionCore(cfg))
    assert "(16 -> 4)" in repr(KVSplice(16, 4))


def test_gpt2_decodes_at_the_cached_position_and_stops_at_block_size():
    torch.manual_seed(7)
    model = tiny("GPT2").eval()  # learned positions: a wrong offset changes the logits
    idx = torch.randint(0, 64, (2, 6))
    with torch.no_grad():
        full, _ = model(idx)
        logits, _, cache = model(idx[:, :4], use_cache=True)
        assert cache["pos"] == 4
        steps = [model(idx[:, t : t + 1], cache=cache, use_cache=True)[0] for t in (4, 5)]
        torch.testing.assert_close(torch.cat([logits] + steps, 1), full, rtol=1e-4, atol=1e-5)
        assert cache["pos"] == 6
        with pytest.raises(ValueError, match="^sequence of 17 tokens exceeds block_size=16$"):
            model(idx[:1, :1].repeat(1, 11), cache=cache, use_cache=True)


def test_residual_projections_start_smaller_by_sqrt_2_n_layer():
    torch.manual_seed(8)
    cfg = GPT2Config(n_layer=8, n_head=4, n_embd=128, block_size=16, vocab_size=64)
    model = CLASSES["GPT2"](cfg)
    for name, p in model.named_parameters():
        if p.dim() == 2:
            std = 0.02 / 4 if name.endswith("c_proj.weight") else 0.02  # sqrt(2 x 8) = 4
            assert abs(p.mean().item()) < 0.1 * std, name
            assert p.std().item() == pytest.approx(std, rel=0.1), name
