"""Learned parameters tested away from their initial values.

Initial values hide defects: KVSplice's shift t starts at 0, so a decode that
forgets it still round-trips; the RA-CT gate starts near pass-through and the
learned RA logit starts on the standard side. Here each one is moved to a
random or opposite value and the layer is checked against its formula.
"""

import pytest
import torch
import torch.nn.functional as F

from models.gpt2.config import GPT2Config
from models.gpt2.layers import AttentionCore, KVSplice, RACTGate


def _random_splice(d, d_c, seed=0):
    torch.manual_seed(seed)
    splice = KVSplice(d, d_c)
    with torch.no_grad():
        splice.s.copy_(torch.randn(d))
        splice.t.copy_(torch.randn(d) * 3)
    return splice


def test_kvsplice_full_rank_round_trip_with_random_s_and_t():
    splice = _random_splice(16, 16)
    c = torch.randn(2, 5, 16)
    torch.testing.assert_close(splice.decode(splice.encode(c)), c, atol=1e-4, rtol=1e-4)


def test_kvsplice_compressed_decode_follows_its_formula():
    splice = _random_splice(32, 8, seed=1)
    z = torch.randn(3, 4, 8)
    c_hat = splice.decode(z)
    expected = (z @ splice.W - splice.t) / F.softplus(splice.s)
    torch.testing.assert_close(c_hat, expected)
    # W has orthonormal rows, so encoding a decoded latent gives it back exactly.
    torch.testing.assert_close(splice.encode(c_hat), z, atol=1e-4, rtol=1e-4)
    c = torch.randn(3, 4, 32)
    torch.testing.assert_close(
        splice.encode(c), (c * F.softplus(splice.s) + splice.t) @ splice.W.t()
    )


def _qkv(seed=0, heads=2, t=6, d=8):
    torch.manual_seed(seed)
    return tuple(torch.randn(1, heads, t, d) for _ in range(3))


@pytest.mark.parametrize("stat", ["topk", "max", "entropy", "rms"])
def test_ract_gate_follows_its_formula_with_moved_scale_and_bias(stat):
    gate = RACTGate(GPT2Config(n_embd=16, n_head=2, ract=True, ract_stat=stat, ract_k=2))
    with torch.no_grad():
        gate.scale.copy_(torch.tensor([-3.0, 0.5]))
        gate.bias.copy_(torch.tensor([0.25, -1.5]))
    torch.manual_seed(3)
    att = F.softmax(torch.randn(1, 2, 4, 5), -1)
    stats = {
        "topk": att.topk(2, dim=-1).values.sum(-1),
        "max": att.amax(-1),
        "entropy": -(att * att.log()).sum(-1),
        "rms": att.pow(2).mean(-1).sqrt(),
    }
    expected = torch.sigmoid(stats[stat] * gate.scale[:, None] + gate.bias[:, None])
    torch.testing.assert_close(gate(att), expected.unsqueeze(-1))


@pytest.mark.parametrize("mode", ["output", "weights"])
def test_ract_output_moves_with_the_gate(mode):
    q, k, v = _qkv()
    cfg = GPT2Config(n_embd=16, n_head=2, ract=True, ract_alpha=0.5, ract_apply=mode)
    core = AttentionCore(cfg)
    before = core(q, k, v)
    with torch.no_grad():
        core.gate.bias.fill_(-4.0)  # gate near 0: the mix halves the output (or logits)
    after = core(q, k, v)
    assert (after - before).abs().max() > 1e-2
    if mode == "output":
        plain = AttentionCore(GPT2Config(n_embd=16, n_head=2))(q, k, v)
        gate = core.gate(F.softmax(_causal_scores(q, k), -1))
        torch.testing.assert_close(after, 0.5 * plain + 0.5 * plain * gate)


def _causal_scores(q, k):
    t = q.size(-2)
    scores = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5
    hidden = torch.ones(t, t, dtype=torch.bool).triu(1)
    return scores.masked_fill(hidden, float("-inf"))


def test_learned_ra_logit_past_zero_switches_to_reciprocal():
    q, k, v = _qkv(seed=2, heads=1, d=16)
    core = AttentionCore(GPT2Config(n_embd=16, n_head=1, ra_learned=True), ra=True)
    reciprocal = AttentionCore(GPT2Config(n_embd=16, n_head=1, ra_alpha=1.0), ra=True)
    standard = AttentionCore(GPT2Config(n_embd=16, n_head=1))
    with torch.no_grad():
        core.ra_logit.fill_(1.5)
    y = core(q, k, v, q_all=q)
    torch.testing.assert_close(y, reciprocal(q, k, v, q_all=q))
    assert not torch.allclose(y, standard(q, k, v))
    y.sum().backward()  # the straight-through estimator still passes a gradient
    assert core.ra_logit.grad is not None and core.ra_logit.grad != 0
