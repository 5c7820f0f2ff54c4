"""The crop-and-flip augmentation on a planted image: training batches move, test batches never."""

import pytest
import torch
import torch.nn.functional as F

from data import augment, vision

P = 4


def planted(n=1, c=3, size=8):
    """n copies of an image whose every (channel, row, column) holds a distinct positive value."""
    img = torch.arange(1, c * size * size + 1, dtype=torch.float32).view(c, size, size)
    return img.expand(n, c, size, size).clone()


def candidates(img, fill):
    """Every window the crop can cut from `img`, mirrored or not: (dr, dc, mirrored) -> window."""
    _, h, w = img.shape
    padded = F.pad(img, (P, P, P, P), value=fill)
    out = {}
    for r in range(2 * P + 1):
        for c in range(2 * P + 1):
            window = padded[:, r : r + h, c : c + w]
            out[(r - P, c - P, False)] = window
            out[(r - P, c - P, True)] = window.flip(-1)
    return out


def which(window, cands):
    found = [k for k, v in cands.items() if torch.equal(window, v)]
    assert len(found) == 1, "each output is exactly one shifted, maybe mirrored, window"
    return found[0]


def data_with(x_train, x_test, mean=0.0, std=1.0, transform=augment.AUGMENTATIONS["crop_flip"]):
    return vision.VisionData(
        name="planted",
        x_train=x_train,
        y_train=torch.arange(len(x_train)),
        x_test=x_test,
        y_test=torch.arange(len(x_test)),
        num_classes=10,
        augment=transform,
        mean=mean,
        std=std,
    )


def test_training_batches_are_shifted_and_mirrored_windows_of_the_image():
    x = planted(n=256)
    d = data_with(x, planted(n=4))
    cands = candidates(x[0], fill=0.0)
    (out, y), *_ = list(d.batches("train", 256, torch.Generator().manual_seed(0)))
    assert out.shape == x.shape and sorted(y.tolist()) == list(range(256))
    seen = [which(w, cands) for w in out]
    shifts = {(dr, dc) for dr, dc, _ in seen}
    mirrored = sum(m for *_, m in seen)
    assert len(shifts) > 40  # of the 81 offsets, most are drawn in 256 images
    assert all(abs(dr) <= P and abs(dc) <= P for dr, dc in shifts)
    assert {-P, P} <= {dr for dr, _ in shifts} and {-P, P} <= {dc for _, dc in shifts}
    assert 90 < mirrored < 166  # about half are mirrored
    assert sum(1 for s in seen if s == (0, 0, False)) < 20  # most images change


def test_test_batches_are_never_augmented():
    x_test = planted(n=10)
    d = data_with(planted(n=10), x_test)
    g = torch.Generator().manual_seed(0)
    for out, _ in d.batches("test", 3, g):
        assert all(torch.equal(w, x_test[0]) for w in out)
    assert torch.equal(torch.cat([x for x, _ in d.batches("test", 4)]), x_test)
    out, _ = d.sample("test", 64, g)
    assert all(torch.equal(w, x_test[0]) for w in out)
    train, _ = d.sample("train", 64, g)
    assert sum(not torch.equal(w, x_test[0]) for w in train) > 50


def test_padding_is_black_in_normalized_units():
    mean, std = 0.25, 0.5  # black (pixel 0) is (0 - 0.25) / 0.5 = -0.5 after normalization
    d = data_with(planted(n=64), planted(n=1), mean=mean, std=std)
    out, _ = d.sample("train", 64, torch.Generator().manual_seed(1))
    cands = candidates(d.x_train[0], fill=-0.5)
    seen = [which(w, cands) for w in out]
    shifted = [w for w, (dr, _, _) in zip(out, seen, strict=True) if dr == P]
    assert shifted and all(torch.all(w[:, -P:, :] == -0.5) for w in shifted)


def test_the_generator_alone_decides_the_draws():
    d = data_with(planted(n=32), planted(n=1))
    a = d.sample("train", 32, torch.Generator().manual_seed(5))
    b = d.sample("train", 32, torch.Generator().manual_seed(5))
    c = d.sample("train", 32, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    with pytest.raises(
        ValueError, match="augmented \\(crop_flip\\); pass a seeded torch.Generator"
    ):
        next(d.batches("train", 4))


def test_without_augmentation_training_batches_are_the_images():
    x = planted(n=8)
    d = data_with(x, planted(n=1), transform=None)
    out, _ = d.sample("train", 16, torch.Generator().manual_seed(0))
    assert all(torch.equal(w, x[0]) for w in out)


def test_load_vision_declares_the_augmentation_by_name():
    d = vision.load_vision("digits", limit_train=40, augment="crop_flip")
    assert d.augment == augment.CropFlip(padding=4, flip=0.5)
    assert d.augment.to_dict() == {"name": "crop_flip", "padding": 4, "flip": 0.5}
    # mean and std are the normalization used: undone, the darkest pixel is black again
    assert float((d.x_train * d.std + d.mean).min()) == pytest.approx(0.0, abs=1e-5)
    assert vision.load_vision("digits", limit_train=40).augment is None
    with pytest.raises(ValueError, match="unknown augmentation 'cutout'; accepted: crop_flip"):
        vision.load_vision("digits", augment="cutout")
    with pytest.raises(ValueError, match="split 'val': accepted: train, test"):
        d.sample("val", 1, torch.Generator())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(padding=-1), "crop padding -1 is invalid"),
        (dict(flip=1.5), "flip probability 1.5 is invalid"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        augment.CropFlip(**kwargs)


def test_a_single_image_is_refused_with_its_shape():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]; got shape \(3, 8, 8\)"):
        augment.CropFlip()(planted()[0], torch.Generator())
