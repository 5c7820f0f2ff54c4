"""The factory, optimizer_step's order, AdamWSPAM against hand-computed moments, the LR restarts."""

import math
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from pruning.masks import Pruned
from pruning.optimizers import OPTIMIZERS, make_optimizer, optimizer_step
from pruning.schedule import lr_at, restart_factor
from pruning.spam import AdamWSPAM


def regression(name, steps=60):
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    x = torch.randn(64, 8)
    y = x @ torch.randn(8, 1)
    opt = make_optimizer(name, model, lr=0.05, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_lowers_the_loss(name):
    losses = regression(name)
    assert losses[-1] < 0.5 * losses[0]


def test_unknown_optimizer_lists_accepted():
    with pytest.raises(ValueError, match="'lion'.*accepted: sgd, adam, adamw"):
        make_optimizer("lion", nn.Linear(2, 2))


def test_factory_puts_magnitude_pruning_around_any_optimizer():
    opt = make_optimizer("sgd", nn.Linear(4, 4), pruning={"method": "magnitude", "target": 0.5})
    assert isinstance(opt, Pruned) and isinstance(opt.base, torch.optim.SGD)
    with pytest.raises(ValueError, match="needs a 'method'"):
        make_optimizer("adamw", nn.Linear(4, 4), pruning={"variant": "bitter7"})


def test_no_import_cycle():
    # adamwprune must import without the factory (which imports it).
    code = "import sys, pruning.adamwprune; assert 'pruning.optimizers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def trainer_step(opt, params, grad, clip=1.0):
    """One update as the trainer makes it (optimizer_step): hook, global clip, step."""
    params[0].grad = torch.tensor(grad, dtype=torch.float64)
    optimizer_step(opt, params, clip)


def test_optimizer_step_hands_raw_gradients_to_the_hook_then_clips():
    p = torch.nn.Parameter(torch.zeros(2))

    class Recorder(torch.optim.SGD):
        def before_clip(self):
            self.seen = float(p.grad.norm())

    opt = Recorder([p], lr=0.0)
    p.grad = torch.tensor([30.0, 40.0])
    optimizer_step(opt, [p], grad_clip=1.0)
    assert opt.seen == 50.0  # the hook saw the raw gradient
    assert float(p.grad.norm()) == pytest.approx(1.0, rel=1e-5)  # then optimizer_step clipped


def test_spam_five_steps_against_hand_values():
    # lr 0.1, betas (0.9, 0.95), no decay, spike test after 4 norms, no periodic reset.
    # Step 5's raw 100 is clipped to sqrt(50 (v + 1e-12)) = 2.7087 (v = 0.146746 after
    # step 4), the norm 2.7549 has z = 16.0 against the four before it (population
    # std), so m *= 0.5 and v *= 0.9 before the update while max_exp_avg_sq stays;
    # then the global clip to norm 1 and the AMSGrad update. Numbers from a float64
    # transcription of those rules, step by step.
    p = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = AdamWSPAM([p], lr=0.1, betas=(0.9, 0.95), weight_decay=0.0, min_norms=4, spike_clip=True)
    opt.reset_interval = 0
    for g in ([1.0, 0.5], [1.2, 0.4], [0.8, 0.6], [1.1, 0.5], [100.0, 0.5]):
        trainer_step(opt, [p], g)
    state = opt.state[p]
    hand = {
        "exp_avg": [0.23562623241617897, 0.08727051101548775],
        "exp_avg_sq": [0.17381995971488928, 0.03477688167620215],
        "max_exp_avg_sq": [0.17381995971488928, 0.03874782299230147],  # entry 1: step 4's v
    }
    for key, want in hand.items():
        torch.testing.assert_close(
            state[key], torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-7
        )
    torch.testing.assert_close(
        p.detach(), torch.tensor([-0.464963622952289, -0.4447802619988633], dtype=torch.float64)
    )
    assert opt.spikes == 1


def feed(opt, norms):
    return [opt._is_spike(x) for x in norms]


def test_spike_test_needs_ten_norms_and_population_std():
    opt = AdamWSPAM([nn.Parameter(torch.zeros(1))])
    # mean of the nine 13/9 = 1.4444, population std 0.4969 (sample std 0.5270):
    # 2.46 is z = 2.04 with the population std, 1.93 with the sample std.
    assert not any(feed(opt, [1, 2, 1, 2, 1, 2, 1, 2, 1]))
    assert feed(opt, [2.46]) == [True]
    opt = AdamWSPAM([nn.Parameter(torch.zeros(1))])
    assert feed(opt, [1, 2, 1, 2, 1, 2, 1, 2, 50]) == [False] * 9  # only 9 norms yet


def test_spike_test_forgets_norms_older_than_the_window():
    opt = AdamWSPAM([nn.Parameter(torch.zeros(1))])
    # the 100s fell out of the last 100: against 50 twos and 49 ones, 2.6 is z = 2.19
    feed(opt, [100.0] * 50 + [1, 2] * 50)
    assert feed(opt, [2.6]) == [True]


def test_spam_state_survives_a_resume():
    def run(steps, opt=None, p=None):
        torch.manual_seed(0)
        grads = [torch.randn(3) * (30 if i == 11 else 1) for i in range(14)]
        if opt is None:
            p = nn.Parameter(torch.zeros(3))
            opt = AdamWSPAM([p], lr=0.1)
        for g in grads[steps[0] : steps[1]]:
            p.grad = g.clone()
            opt.step()
        return p, opt

    p_full, opt_full = run((0, 14))
    p_half, opt_half = run((0, 8))
    p_new = nn.Parameter(p_half.detach().clone())
    opt_new = AdamWSPAM([p_new], lr=0.1)
    opt_new.load_state_dict(opt_half.state_dict())
    run((8, 14), opt_new, p_new)
    assert opt_full.spikes == opt_new.spikes == 1
    torch.testing.assert_close(p_new.detach(), p_full.detach(), rtol=0, atol=0)


def test_optimizer_does_not_clip_globally():
    p = nn.Parameter(torch.zeros(2))
    opt = AdamWSPAM([p], lr=0.1, spam=False)
    p.grad = torch.tensor([30.0, 40.0])
    opt.step()
    torch.testing.assert_close(opt.state[p]["exp_avg"], torch.tensor([3.0, 4.0]))


def test_adamwadv_does_not_clip_spikes():
    p = nn.Parameter(torch.zeros(1))
    opt = AdamWSPAM([p], lr=0.1, weight_decay=0.0, spam=False)
    for g in (1.0, 1000.0):
        p.grad = torch.tensor([g])
        opt.step()
    assert opt.state[p]["exp_avg"].item() == pytest.approx(0.09 + 100.0, rel=1e-5)
    assert "max_exp_avg_sq" in opt.state[p] and opt.lr_restarts is None


def test_periodic_reset_zeroes_moments_and_leaves_lr_to_the_trainer():
    p = nn.Parameter(torch.zeros(1))
    opt = AdamWSPAM([p], lr=0.1, reset_interval=3, reset_warmup=4)
    for _ in range(4):  # step 4: moments zeroed before the update
        p.grad = torch.tensor([1.0])
        opt.step()
    state = opt.state[p]
    assert state["exp_avg"].item() == pytest.approx(0.1)
    assert state["exp_avg_sq"].item() == pytest.approx(0.05)
    # The reference leaves AMSGrad's maximum alone: v after steps 1-3 is 1 - 0.95^3.
    assert state["max_exp_avg_sq"].item() == pytest.approx(1 - 0.95**3)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.lr_restarts == (3, 4)


def test_reset_amsgrad_max_is_an_option():
    p = nn.Parameter(torch.zeros(1))
    opt = AdamWSPAM([p], lr=0.1, reset_interval=3, reset_amsgrad_max=True)
    for _ in range(4):
        p.grad = torch.tensor([1.0])
        opt.step()
    assert opt.state[p]["max_exp_avg_sq"].item() == pytest.approx(0.05)


def test_spike_clipping_is_off_by_default_as_in_the_reference():
    p = nn.Parameter(torch.zeros(1))
    opt = AdamWSPAM([p], lr=0.1, weight_decay=0.0)
    p.grad = torch.tensor([1.0])
    opt.step()  # v = 0.05 after one step: the clip threshold would be sqrt(50 v) = 1.58
    p.grad = torch.tensor([100.0])
    opt.before_clip()
    assert p.grad.item() == 100.0
    opt = AdamWSPAM([p], lr=0.1, weight_decay=0.0, spike_clip=True)
    p.grad = torch.tensor([1.0])
    opt.step()
    p.grad = torch.tensor([100.0])
    opt.before_clip()
    assert p.grad.item() == pytest.approx(math.sqrt(50 * (0.05 + 1e-12)))


def test_restart_factor_warms_up_after_each_reset():
    assert restart_factor(999, 1000, 150) == 1.0
    assert restart_factor(1000, 1000, 150) == pytest.approx(0.5 * (1 - math.cos(math.pi / 150)))
    assert restart_factor(1149, 1000, 150) == pytest.approx(1.0)
    assert restart_factor(2000, 1000, 150) == restart_factor(1000, 1000, 150)
    assert lr_at(1000, 1.0, 0.0, 0, 10**6, (1000, 150)) < 0.001
    assert lr_at(1000, 1.0, 0.0, 0, 10**6) > 0.99


def test_factory_builds_the_named_optimizer_with_its_betas_and_decay_groups():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    kinds = {
        "sgd": torch.optim.SGD,
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "adamwadv": AdamWSPAM,
        "adamwspam": AdamWSPAM,
    }
    for name, cls in kinds.items():
        opt = make_optimizer(name, model, lr=0.01, weight_decay=0.2, betas=(0.8, 0.9))
        assert type(opt) is cls, name
        decay, no_decay = opt.param_groups
        assert [p.dim() for p in decay["params"]] == [2] and decay["weight_decay"] == 0.2
        assert [p.dim() for p in no_decay["params"]] == [1, 1, 1]  # biases and the norm
        assert no_decay["weight_decay"] == 0.0, name
        if name != "sgd":
            assert decay["betas"] == (0.8, 0.9), name
    assert make_optimizer("adamwspam", model).spam and not make_optimizer("adamwadv", model).spam


def test_adamwspam_defaults():
    opt = AdamWSPAM([nn.Parameter(torch.zeros(2))])
    assert {k: opt.defaults[k] for k in ("lr", "betas", "weight_decay", "amsgrad")} == {
        "lr": 6e-4,
        "betas": (0.9, 0.95),
        "weight_decay": 0.1,
        "amsgrad": True,
    }


def test_no_warmup_before_the_first_reset_and_the_schedule_by_hand():
    assert restart_factor(5, 1000, 150) == 1.0  # no reset has happened yet
    assert restart_factor(1005, 1000, 0) == 1.0  # no restart warmup asked for
    # Linear warmup over iterations 0..warmup-1, then cosine to min_lr at decay_iters.
    assert [lr_at(i, 1.0, 0.1, 4, 10) for i in range(4)] == [0.2, 0.4, 0.6, 0.8]
    assert lr_at(4, 1.0, 0.1, 4, 10) == 1.0
    assert lr_at(7, 1.0, 0.1, 4, 10) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 2)))
    assert lr_at(10, 1.0, 0.1, 4, 10) == lr_at(50, 1.0, 0.1, 4, 10) == 0.1
