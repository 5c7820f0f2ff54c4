"""masks.py's edges that the mutation run found untested: shared weights, bad
input, closures and mismatched saved state."""

import pytest
import torch
import torch.nn as nn

from pruning.masks import MagnitudePruner, prunable, with_pruning


def test_a_weight_shared_by_two_linears_is_pruned_once():
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    model = nn.Sequential(a, nn.ReLU(), b)
    assert [name for name, _ in prunable(model)] == ["0.weight"]
    assert MagnitudePruner(model, frequency=1).names == ["0.weight"]


def test_bad_input_is_named():
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ValueError, match="unknown pruning method 'lottery'; accepted: magnitude"):
        with_pruning(torch.optim.SGD(model.parameters(), lr=0.1), model, "lottery")
    with pytest.raises(ValueError, match="frequency 0 is invalid"):
        MagnitudePruner(model, frequency=0)
    assert MagnitudePruner(model, frequency=1).frequency == 1  # 1 is the smallest accepted
    with pytest.raises(ValueError, match="no Linear or Conv2d weight"):
        MagnitudePruner(nn.Sequential(nn.ReLU()))


def test_step_passes_the_closure_to_the_optimizer():
    model = nn.Sequential(nn.Linear(4, 1))
    opt = with_pruning(torch.optim.SGD(model.parameters(), lr=0.1), model, "magnitude")
    x = torch.randn(8, 4)

    def closure():
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss

    assert isinstance(opt.step(closure), torch.Tensor)


def test_loading_a_state_with_other_masks_fails():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    pruner = MagnitudePruner(model)
    state = pruner.state_dict()
    state["masks"] = state["masks"][:1]
    with pytest.raises(ValueError):
        pruner.load_state_dict(state)
