import pytest
import torch
import torch.nn as nn

from pruning.adamwprune import AdamWPrune
from pruning.masks import MagnitudePruner, MovementPruner, prunable, with_pruning
from pruning.optimizers import make_optimizer
from pruning.schedule import layer_sparsities, scaled, sparsity_at
from pruning.scores import get_score


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 16)
        self.layers = nn.Sequential(
            nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32)
        )
        self.conv = nn.Conv2d(1, 16, 3)  # 144 weights: 1% granularity
        self.head = nn.Linear(16, 20, bias=False)
        self.head.weight = self.emb.weight  # tied, like GPT-2's lm_head

    def forward(self, x):
        return self.layers(x).sum() + self.conv(x[:, None, :4, None].expand(-1, 1, 4, 4)).sum()


def train(opt, model, steps):
    torch.manual_seed(1)
    for _ in range(steps):
        x = torch.randn(8, 16)
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()


def test_schedule():
    assert sparsity_at(500, 0.5, 1000, 3000) == 0.0
    assert sparsity_at(2000, 0.5, 1000, 3000) == pytest.approx(0.5 * 0.5**3)
    assert sparsity_at(2000, 0.5, 1000, 3000, "linear") == pytest.approx(0.25)
    assert sparsity_at(9999, 0.5, 1000, 3000) == 0.5
    assert layer_sparsities(0.5, 5) == pytest.approx([0.35, 0.425, 0.5, 0.575, 0.65])
    assert layer_sparsities(0.8, 3) == pytest.approx([0.56, 0.8, 0.95])  # 1.04 capped
    with pytest.raises(ValueError, match="target sparsity 1.5"):
        sparsity_at(0, 1.5, 0, 1)


def test_prunable_includes_tied_lm_head_unless_dense_tied():
    layers = ["layers.0.weight", "layers.2.weight", "layers.4.weight", "conv.weight"]
    assert [n for n, _ in prunable(Net())] == [*layers, "head.weight"]  # the reference's pool
    assert [n for n, _ in prunable(Net(), dense_tied=True)] == layers


def test_gpt2_124m_pruned_pool():
    # 12 blocks x (c_attn 768x2304 + c_proj 768x768 + c_fc 768x3072 + mlp c_proj 3072x768)
    # = 12 x 7,077,888 = 84,934,656, plus the tied lm_head 50,304 x 768 = 38,633,472.
    from models.gpt2.config import GPT2Config
    from models.gpt2.gpt2 import GPT2

    with torch.device("meta"):  # shapes only: nothing allocated
        model = GPT2(GPT2Config())
    assert model.config.vocab_size == 50304
    pool = {name: w.numel() for name, w in prunable(model)}
    assert pool["lm_head.weight"] == 38_633_472
    assert sum(pool.values()) - pool["lm_head.weight"] == 84_934_656
    assert sum(pool.values()) == 123_568_128
    assert sum(w.numel() for _, w in prunable(model, dense_tied=True)) == 84_934_656


@pytest.mark.parametrize("variant", ["bitter0", "bitter1", "bitter3", "bitter5", "bitter7"])
def test_adamwprune_reaches_global_sparsity_and_pruned_stay_zero(variant):
    torch.manual_seed(0)
    model = Net()
    base = make_optimizer("adamw", model, lr=1e-2)
    opt = AdamWPrune(base, model, variant=variant, target=0.6, warmup=2, ramp_end=12, frequency=3)
    train(opt, model, 12)
    assert abs(opt.sparsity() - 0.6) < 0.01
    zeros = [w == 0 for w in opt.pruner.weights]
    train(opt, model, 10)  # after the ramp: momentum and weight decay must not revive any
    for before, w in zip(zeros, opt.pruner.weights, strict=True):
        assert (w[before] == 0).all()
    assert abs(opt.sparsity() - 0.6) < 0.01


def test_bitter4_per_layer_sparsity():
    torch.manual_seed(0)
    model = Net()
    opt = AdamWPrune(
        make_optimizer("adam", model), model, variant="bitter4", target=0.5, warmup=0, ramp_end=5
    )
    train(opt, model, 6)
    want = layer_sparsities(0.5, len(opt.pruner.weights))
    for got, w in zip(opt.pruner.layer_sparsity(), want, strict=True):
        assert abs(got - w) < 0.01


def test_masks_only_shrink_along_the_ramp():
    torch.manual_seed(0)
    model = Net()
    opt = AdamWPrune(make_optimizer("adamw", model), model, target=0.5, warmup=0, ramp_end=8)
    previous = [m.clone() for m in opt.pruner.masks]
    for _ in range(9):
        train(opt, model, 1)
        for old, new in zip(previous, opt.pruner.masks, strict=True):
            assert not (new & ~old).any()
        previous = [m.clone() for m in opt.pruner.masks]


def test_magnitude_keeps_the_largest():
    lin = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.1, -3.0, 0.2, 2.0]]))
    pruner = MagnitudePruner(lin, target=0.5, warmup=0, ramp_end=1)
    pruner.update_masks(0.5)
    assert pruner.masks[0].tolist() == [[False, True, False, True]]


def test_movement_scores_w_times_change():
    lin = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 1.0, -1.0]]))
    pruner = MovementPruner(lin, target=0.5, warmup=0, ramp_end=1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, 0.5, -2.0]]))
    # W (W - W0) = [2, -0.25, 2]
    assert pruner.score(0, lin.weight).tolist() == [[2.0, -0.25, 2.0]]
    assert sparsity_at(5, 0.5, 0, 10, pruner.shape) == 0.25  # linear ramp


def test_with_pruning_on_sgd_reaches_target():
    torch.manual_seed(0)
    model = Net()
    opt = with_pruning(
        make_optimizer("sgd", model, lr=1e-3), model, "magnitude", target=0.7, warmup=0, ramp_end=4
    )
    train(opt, model, 5)
    assert abs(opt.sparsity() - 0.7) < 0.01


def test_adamwprune_refuses_sgd_and_unknown_variant():
    model = Net()
    with pytest.raises(ValueError, match="Adam-family.*SGD"):
        AdamWPrune(torch.optim.SGD(model.parameters(), lr=0.1), model)
    with pytest.raises(ValueError, match="bitter42.*accepted"):
        AdamWPrune(make_optimizer("adam", model), model, variant="bitter42")
    with pytest.raises(ValueError, match="cannot wrap 'sgd'"):
        make_optimizer("adamwprune", model, base="sgd")


def test_state_dict_roundtrip():
    torch.manual_seed(0)
    model = Net()
    opt = AdamWPrune(make_optimizer("adamw", model), model, target=0.5, warmup=0, ramp_end=3)
    train(opt, model, 4)
    state = opt.state_dict()
    other = AdamWPrune(make_optimizer("adamw", model), model, target=0.5, warmup=0, ramp_end=3)
    other.load_state_dict(state)
    assert other.pruner.t == 4
    for a, b in zip(opt.pruner.masks, other.pruner.masks, strict=True):
        assert torch.equal(a, b)


def test_scaled_schedule_stretches_to_the_budget():
    declared = {
        "variant": "bitter7",
        "target": 0.5,
        "warmup": 1000,
        "ramp_end": 3000,
        "frequency": 50,
    }
    short = scaled(declared, 1040, 10400)
    assert short == dict(declared, warmup=100, ramp_end=300, frequency=5)
    tiny = scaled(declared, 10, 10400)  # the ramp keeps an iteration, rescoring every one
    assert (tiny["warmup"], tiny["ramp_end"], tiny["frequency"]) == (1, 3, 1)
    assert scaled(None, 10, 100) is None


def test_a_pruned_optimizer_passes_hooks_and_zero_grad_through():
    model = Net()
    base = make_optimizer("adamwspam", model, lr=0.01)
    calls = []
    base.before_clip = lambda: calls.append("before_clip")
    opt = with_pruning(base, model, "magnitude", target=0.5, warmup=0, ramp_end=2)
    opt.before_clip()  # the trainer calls it on the wrapper: SPAM must still see it
    assert calls == ["before_clip"]
    with_pruning(torch.optim.SGD(model.parameters(), lr=0.1), model, "magnitude").before_clip()
    model(torch.randn(2, 16)).backward()
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model(torch.randn(2, 16)).backward()
    used = [p for p in model.parameters() if p.grad is not None]
    opt.zero_grad(set_to_none=False)
    assert used and all(p.grad is not None and not p.grad.any() for p in used)


def test_adamwprune_scores_from_the_optimizers_own_state():
    torch.manual_seed(0)
    model = Net()
    base = make_optimizer("adamw", model, lr=0.01, betas=(0.8, 0.9))
    opt = AdamWPrune(base, model, variant="bitter8_mhat", target=0.5, warmup=100, ramp_end=200)
    pruner = opt.pruner
    w = pruner.weights[0]
    # Before any step there is no state: m = v = 0 and step 1.
    expected = get_score("bitter8_mhat")(w, torch.zeros_like(w), torch.zeros_like(w), step=1)
    torch.testing.assert_close(pruner.score(0, w), expected)
    train(opt, model, 3)
    state = base.state[w]
    expected = get_score("bitter8_mhat")(
        w, state["exp_avg"], state["exp_avg_sq"], step=3, beta1=0.8
    )
    torch.testing.assert_close(pruner.score(0, w), expected)
    assert not torch.allclose(expected, get_score("bitter8_mhat")(w, state["exp_avg"], None))
