import math

import pytest
import torch
import torch.nn.functional as F

from models.gpt2 import zoo
from models.gpt2.config import GPT2Config, preset
from models.gpt2.layers import AttentionCore, KVSplice, MLPSplice, RACTGate, causal_mask, rope


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
