"""Training-batch augmentation of images: the old tree's CIFAR random crop and flip.

The old tree trained ResNet-18 on CIFAR-10 with torchvision's
`RandomCrop(32, padding=4)` and `RandomHorizontalFlip()` on the training set
only (`resnet18/train.py`), and its 90.66% needs them. `CropFlip` is that
pair on whole batches of already normalized images: each image is padded by
`padding` pixels of black, a window of the original size is cut at a random
offset (0 .. 2 padding in each direction), and the window is mirrored
left-right with probability `flip`. Every draw comes from the caller's
seeded `torch.Generator`, so a run's augmentation is reproducible.

Black is pixel value 0 before normalization, (0 - mean) / std after it; the
dataset passes its own `fill` (data/vision.py). A dataset names its
augmentation in `AUGMENTATIONS`; `VisionData` applies it to training
batches and never to test batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CropFlip:
    """Random crop after zero-padding, then a random horizontal flip, per image."""

    padding: int = 4
    flip: float = 0.5
    name: str = "crop_flip"

    def __post_init__(self):
        if isinstance(self.padding, bool) or not isinstance(self.padding, int) or self.padding < 0:
            raise ValueError(f"crop padding {self.padding!r} is invalid; accepted: an int >= 0")
        if not 0.0 <= self.flip <= 1.0:
            raise ValueError(f"flip probability {self.flip!r} is invalid; accepted: 0 <= p <= 1")

    def __call__(self, x: torch.Tensor, generator: torch.Generator, fill: float = 0.0):
        """x [N, C, H, W] -> the augmented batch, same shape; draws from `generator`."""
        if x.dim() != 4:
            raise ValueError(f"a batch of images is [N, C, H, W]; got shape {tuple(x.shape)}")
        n, _, h, w = x.shape
        p = self.padding
        on = generator.device
        rows = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=on).to(x.device)
        cols = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=on).to(x.device)
        mirror = (torch.rand(n, generator=generator, device=on) < self.flip).to(x.device)
        padded = F.pad(x, (p, p, p, p), value=fill)
        r = rows[:, None] + torch.arange(h, device=x.device)  # [N, H]
        c = cols[:, None] + torch.arange(w, device=x.device)  # [N, W]
        c = torch.where(mirror[:, None], c.flip(-1), c)
        batch = torch.arange(n, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, r[:, :, None], c[:, None, :]]  # [N, H, W, C]
        return out.permute(0, 3, 1, 2).contiguous()

    def to_dict(self) -> dict:
        return {"name": self.name, "padding": self.padding, "flip": self.flip}


AUGMENTATIONS = {"crop_flip": CropFlip(padding=4, flip=0.5)}


def augmentation(name: str | None) -> CropFlip | None:
    """The augmentation called `name`; None for none."""
    if name is None:
        return None
    if name not in AUGMENTATIONS:
        raise ValueError(
            f"unknown augmentation {name!r}; accepted: {', '.join(AUGMENTATIONS)} (or none)"
        )
    return AUGMENTATIONS[name]
