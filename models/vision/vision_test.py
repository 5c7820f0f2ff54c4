import pytest
import torch

from models.vision.zoo import INPUT_SHAPES, build

PARAMS = {"lenet5": 61_706, "resnet18": 11_173_962, "resnet50": 23_705_252}


@pytest.mark.parametrize("name", PARAMS)
def test_parameter_count_and_output_shape(name):
    with torch.device("meta"):
        model = build(name)
        out = model(torch.randn(2, *INPUT_SHAPES[name]))
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    assert out.shape == (2, 100 if name == "resnet50" else 10)


def test_resnet18_trains_a_step_on_small_images():
    torch.manual_seed(0)
    model = build("resnet18")
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(4):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_unknown_model_lists_accepted():
    with pytest.raises(ValueError, match="vgg.*lenet5, resnet18, resnet50"):
        build("vgg")
