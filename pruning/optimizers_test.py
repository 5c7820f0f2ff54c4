import math

import pytest
import torch
import torch.nn as nn

from pruning.optimizers import OPTIMIZERS, AdamWSPAM, make_optimizer


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


def one_param_opt(**kwargs):
    p = nn.Parameter(torch.zeros(1))
    opt = AdamWSPAM([p], lr=0.1, betas=(0.9, 0.95), weight_decay=0.0, clip_norm=None, **kwargs)
    return p, opt


def step_with(p, opt, g):
    p.grad = torch.tensor([g])
    opt.step()


def test_spam_clips_a_spike_to_sqrt_theta_v():
    p, opt = one_param_opt(theta=50.0)
    step_with(p, opt, 1.0)  # m = 0.1, v = 0.05
    step_with(p, opt, 1000.0)  # clipped to sqrt(50 * 0.05) = 1.5811
    m = opt.state[p]["exp_avg"].item()
    assert m == pytest.approx(0.9 * 0.1 + 0.1 * math.sqrt(2.5), rel=1e-5)


def test_adamwadv_does_not_clip_spikes():
    p, opt = one_param_opt(spam=False)
    step_with(p, opt, 1.0)
    step_with(p, opt, 1000.0)
    assert opt.state[p]["exp_avg"].item() == pytest.approx(0.09 + 100.0, rel=1e-5)
    assert "max_exp_avg_sq" in opt.state[p]  # amsgrad


def test_periodic_reset_zeroes_moments_and_warms_up():
    p, opt = one_param_opt(reset_interval=3, reset_warmup=4)
    for _ in range(3):
        step_with(p, opt, 1.0)
    step_with(p, opt, 1.0)  # step 4: moments reset before the update
    assert opt.state[p]["exp_avg"].item() == pytest.approx(0.1)
    assert opt.lr_scale() < 1.0  # in the warmup after the reset


def test_soft_reset_on_gradient_norm_outlier():
    p, opt = one_param_opt(theta=1e12)
    for _ in range(12):
        step_with(p, opt, 1.0 + 0.01 * torch.randn(()).item())
    v_before = opt.state[p]["exp_avg_sq"].item()
    step_with(p, opt, 50.0)  # z-score far above 2: moments halved before the update
    v = opt.state[p]["exp_avg_sq"].item()
    assert v == pytest.approx(0.95 * 0.5 * v_before + 0.05 * 2500.0, rel=1e-4)


def test_clipping_bounds_the_global_norm():
    p = nn.Parameter(torch.zeros(2))
    opt = AdamWSPAM([p], lr=0.1, clip_norm=1.0, spam=False)
    p.grad = torch.tensor([30.0, 40.0])
    opt.step()
    assert opt.state[p]["exp_avg"].norm().item() == pytest.approx(0.1, rel=1e-4)


def test_cosine_annealing_to_min_lr():
    p, opt = one_param_opt(spam=False, total_steps=10, min_lr=1e-6)
    for _ in range(10):
        step_with(p, opt, 1.0)
    assert opt.lr_scale() == pytest.approx(0.0, abs=1e-12)
