"""The pruning matrix's vision rows: a consistent declaration, ResNet-50 on CIFAR-100 with
its augmentation on training batches only, and ResNet-50's CPU dry-run through a run."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data import augment, vision
from experiments import run_step, testing, vision_step
from experiments.record import RunResult
from experiments.results import read_json
from models.vision import zoo
from tools.bazel.bzl_data import load_bzl

DECLARED = load_bzl(Path(__file__).with_name("pruning_matrix.bzl"))
MODELS = DECLARED["MODELS"]


@pytest.mark.parametrize("kind", ["cpu", "cuda"])
def test_every_entry_names_a_known_model_dataset_and_augmentation(kind):
    assert set(MODELS) == {"cpu", "cuda"}
    assert set(MODELS[kind]) == set(DECLARED["MATRIX"]["models"])
    for model, spec in MODELS[kind].items():
        assert model in zoo.VISION_MODELS
        assert list(spec) == DECLARED["MODEL_KEYS"]
        channels, _, _ = vision.VISION_DATASETS[spec["dataset"]]
        assert spec["channels"] == zoo.INPUT_SHAPES[model][0]  # what the model takes
        assert channels in (1, spec["channels"])  # grey images are repeated to 3 channels
        assert spec["augment"] is None or spec["augment"] in augment.AUGMENTATIONS
        assert all(spec[k] > 0 for k in ("image_size", "iters", "batch"))


def test_the_gpu_rows_are_the_old_trees_benchmarks():
    gpu = MODELS["cuda"]
    assert gpu["resnet50"] == {
        "dataset": "cifar100",
        "image_size": 32,
        "channels": 3,
        "iters": 39100,
        "batch": 128,
        "augment": "crop_flip",
    }
    assert (gpu["resnet18"]["dataset"], gpu["resnet18"]["augment"]) == ("cifar10", "crop_flip")
    assert (gpu["lenet5"]["dataset"], gpu["lenet5"]["augment"]) == ("mnist", None)
    assert {spec["dataset"] for spec in MODELS["cpu"].values()} == {"digits"}


def test_every_pruned_cell_is_compared_with_the_dense_cell_of_its_model_and_optimizer():
    for profile in ("cpu", "h100"):
        cells = {s["name"]: s["declaration"] for s in testing.steps("pruning_matrix", profile)}
        assert {"resnet50-adamw-none", "resnet50-adamw-bitter7-50"} <= set(cells)
        dense = {(d["model"], d["optimizer"]) for d in cells.values() if d["method"] == "none"}
        pruned = [n for n, d in cells.items() if d["method"] != "none"]
        assert pruned and all((cells[n]["model"], cells[n]["optimizer"]) in dense for n in pruned)
    # On the CPU, ResNet-50 trains the reduced cells only (--steps='resnet50-*' is a dry run).
    cpu = [s["name"] for s in testing.steps("pruning_matrix", "cpu") if s["name"][:8] == "resnet50"]
    assert cpu == [
        "resnet50-adamw-none",
        "resnet50-adamw-magnitude-50",
        "resnet50-adamw-bitter7-50",
    ]


IMAGE = np.random.default_rng(0).integers(0, 256, 3 * 32 * 32, dtype=np.uint8)


def _plant_cifar100(root, n_train=8, n_test=4):
    """CIFAR-100 on disk, every image the same planted one (random pixels: each of its
    crops is told apart from every other), labels random."""
    d = root / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", n_train), ("test", n_test)):
        batch = {
            b"data": np.tile(IMAGE, (n, 1)),
            b"fine_labels": [int(i) for i in rng.integers(0, 100, n)],
        }
        (d / name).write_bytes(pickle.dumps(batch))


def _windows(img, fill, pad=4):
    """Every crop (after padding) of `img`, mirrored or not: (dr, dc, mirrored) -> window."""
    _, h, w = img.shape
    padded = F.pad(img, (pad, pad, pad, pad), value=fill)
    out = {}
    for r in range(2 * pad + 1):
        for c in range(2 * pad + 1):
            window = padded[:, r : r + h, c : c + w]
            out[(r - pad, c - pad, False)] = window
            out[(r - pad, c - pad, True)] = window.flip(-1)
    return out


def test_a_resnet50_cell_augments_its_training_batches_and_never_its_test_batches(
    tmp_path, monkeypatch
):
    """The GPU declaration of resnet50-adamw-none, built as its run builds it, on a planted
    CIFAR-100: training batches are crops and flips of the image, test batches the image."""
    _plant_cifar100(tmp_path)
    monkeypatch.setenv("KNLP_DATA_DIR", str(tmp_path))  # as on a GPU host
    spec = testing.write_run_spec(
        tmp_path / "spec.json", "pruning_matrix", "resnet50-adamw-none", profile="h100"
    )
    built = vision_step.build(spec, testing.profile_of(spec), "cpu", None)
    assert built.model.net.fc.out_features == 100
    assert built.built["dataset"] == "cifar100"
    assert built.built["augment"] == {"name": "crop_flip", "padding": 4, "flip": 0.5}
    stored = built.get_batch("val", torch.Generator().manual_seed(0))[0][0]
    mean, std = float(IMAGE.mean()) / 255, float(IMAGE.std()) / 255 + 1e-8
    planted = (torch.from_numpy(IMAGE.astype(np.float32) / 255).view(3, 32, 32) - mean) / std
    assert torch.allclose(stored, planted, atol=1e-5)  # the test image, as stored
    windows = _windows(stored, fill=-mean / std)
    g = torch.Generator().manual_seed(0)
    seen = []
    for _ in range(4):
        x, _ = built.get_batch("train", g)
        assert x.shape == (128, 3, 32, 32)
        for img in x:
            found = [k for k, w in windows.items() if torch.equal(img, w)]
            assert len(found) == 1, "each training image is one crop of the planted image"
            seen.append(found[0])
        test_x, _ = built.get_batch("val", g)
        assert all(torch.equal(img, stored) for img in test_x)  # never augmented
    shifts = {(dr, dc) for dr, dc, _ in seen}
    assert len(shifts) > 60 and 180 < sum(m for *_, m in seen) < 332  # of 81 offsets; ~half
    assert sum(s == (0, 0, False) for s in seen) < 20


@pytest.fixture
def _keep_threads():
    """A run on the cpu profile sets torch's threads to 1; later tests get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_resnet50_dry_runs_on_the_cpu_as_its_run_does(tmp_path, _keep_threads):
    """resnet50-adamw-bitter7-50 on the cpu profile through run_step for one iteration."""
    step = "resnet50-adamw-bitter7-50"
    spec = testing.write_run_spec(tmp_path / "spec.json", "pruning_matrix", step, iters=1)
    assert spec.declaration["settings"]["dataset"] == "digits"
    inputs = testing.write_inputs(tmp_path / "inputs.txt", [tmp_path / "spec.json"])
    out = tmp_path / "out"
    out.mkdir()
    argv = ["--spec", str(tmp_path / "spec.json"), "--inputs", inputs, "--out", str(out)]
    assert run_step.main(argv + ["--store", str(tmp_path / "store")]) == 0
    res = RunResult.from_dict(read_json(str(out / "result.json")))
    assert res.status == "done" and res.values["iters"] == 1, res.failure
    assert res.values["model_class"] == "resnet50" and res.values["params"] > 20_000_000
    assert 0.0 <= res.values["test_acc"] <= 1.0 and np.isfinite(res.values["val_loss"])
    assert res.built["augment"] is None and res.built["method"] == "bitter7"
