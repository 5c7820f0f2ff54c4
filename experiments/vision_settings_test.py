"""The vision settings: a consistent declaration, ResNet-50 on CIFAR-100, and a CPU dry-run."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data import augment, vision
from experiments import vision_settings
from experiments.vision_settings import VISION
from models.vision import zoo
from pruning import optimizers


@pytest.mark.parametrize("kind", vision_settings.KINDS)
def test_every_entry_names_a_known_model_dataset_and_augmentation(kind):
    assert set(VISION) == set(vision_settings.KINDS)
    for model, spec in VISION[kind].items():
        assert model in zoo.VISION_MODELS
        assert tuple(spec) == vision_settings.KEYS
        channels, _, _ = vision.VISION_DATASETS[spec["dataset"]]
        assert spec["channels"] == zoo.INPUT_SHAPES[model][0]  # what the model takes
        assert channels in (1, spec["channels"])  # grey images are repeated to 3 channels
        assert spec["augment"] is None or spec["augment"] in augment.AUGMENTATIONS
        assert all(spec[k] > 0 for k in ("image_size", "iters", "batch"))


def test_the_gpu_rows_are_the_old_trees_benchmarks():
    gpu = VISION["cuda"]
    assert gpu["resnet50"] == dict(
        dataset="cifar100", image_size=32, channels=3, iters=39100, batch=128, augment="crop_flip"
    )
    assert (gpu["resnet18"]["dataset"], gpu["resnet18"]["augment"]) == ("cifar10", "crop_flip")
    assert (gpu["lenet5"]["dataset"], gpu["lenet5"]["augment"]) == ("mnist", None)
    assert {spec["dataset"] for spec in VISION["cpu"].values()} == {"digits"}


def test_lookup_names_what_is_accepted():
    assert vision_settings.setting("cuda", "resnet50")["dataset"] == "cifar100"
    with pytest.raises(ValueError, match="model 'vgg' has no cpu settings; accepted: lenet5"):
        vision_settings.setting("cpu", "vgg")
    with pytest.raises(ValueError, match="unknown device kind 'tpu'; accepted: cpu, cuda"):
        vision_settings.setting("tpu", "lenet5")
    assert [vision_settings.kind_of(d) for d in ("cpu", "cuda", "cuda:1")] == ["cpu"] + ["cuda"] * 2
    with pytest.raises(ValueError, match="device 'mps' is invalid; accepted: cpu, cuda, cuda:N"):
        vision_settings.kind_of("mps")


def _plant_cifar100(root, n_train=6, n_test=3):
    d = root / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        batch = {
            b"data": rng.integers(0, 255, (n, 3 * 32 * 32), dtype=np.uint8),
            b"fine_labels": [int(i) for i in rng.integers(0, 100, n)],
        }
        (d / name).write_bytes(pickle.dumps(batch))


def test_resnet50_gets_cifar100_from_the_data_dir_with_100_classes(tmp_path, monkeypatch):
    _plant_cifar100(tmp_path)
    monkeypatch.setenv("KNLP_DATA_DIR", str(tmp_path))  # as on a GPU host
    spec = vision_settings.setting("cuda", "resnet50")
    data = vision.load_vision(
        spec["dataset"], spec["image_size"], spec["channels"], augment=spec["augment"]
    )
    assert data.num_classes == 100 and data.x_train.shape == (6, 3, 32, 32)
    assert data.augment == augment.AUGMENTATIONS["crop_flip"]
    net = zoo.build("resnet50", num_classes=data.num_classes, in_channels=spec["channels"])
    assert net.fc.out_features == 100
    x, y = data.sample("train", 2, torch.Generator().manual_seed(0))
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (2, 100)


def test_resnet50_dry_run_trains_two_iterations_on_digits():
    spec = vision_settings.setting("cpu", "resnet50")
    data = vision.load_vision(
        spec["dataset"],
        spec["image_size"],
        spec["channels"],
        limit_train=64,
        augment=spec["augment"],
    )
    torch.manual_seed(0)
    net = zoo.build("resnet50", num_classes=data.num_classes, in_channels=spec["channels"])
    assert net.fc.out_features == 10
    opt = optimizers.make_optimizer("adamw", net, lr=2e-3, weight_decay=5e-4)
    before = net.fc.weight.detach().clone()
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(2):
        x, y = data.sample("train", 8, g)
        assert x.shape == (8, 3, spec["image_size"], spec["image_size"])
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and not torch.equal(before, net.fc.weight)
