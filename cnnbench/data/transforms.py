"""Batched, on-device image transforms: uint8 batch in, normalized float batch out.

Order follows the seeds' torchvision pipelines: Resize (d2l) -> RandomHorizontalFlip ->
RandomCrop(size, padding=4) (seed 001; data.crop_padding) -> ToTensor + Normalize -> RandomErasing. Every
random draw comes from one `torch.Generator` on the batch's device, so a seed fixes the augmentation.
MixUp and CutMix mix the labels too, so they act in the training step (batch_mix), with torchvision's own transforms.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CROP_PADDING = 4


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a float batch, as torchvision's Resize does for upsampling."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(x: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING) -> torch.Tensor:
    """Zero-pad each side by `padding`, then cut a window of the original size at a random offset per image."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (n, 1, 1, w)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_erasing(x: torch.Tensor, generator: torch.Generator, p: float, scale=(0.02, 0.33),
                   ratio=(0.3, 3.3)) -> torch.Tensor:
    """torchvision's RandomErasing for a whole batch: each image, with probability `p`, gets one rectangle of
    `scale` of its area and aspect `ratio` (log-uniform) set to 0, at a random place. A rectangle larger than the
    image is cut to its size (torchvision draws again instead)."""
    n, _, h, w = x.shape
    draw = lambda: torch.rand(n, device=x.device, generator=generator)  # noqa: E731 (one uniform per image)
    area = h * w * (scale[0] + (scale[1] - scale[0]) * draw())
    aspect = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * draw())
    eh = (area * aspect).sqrt().round().clamp(1, h).long()
    ew = (area / aspect).sqrt().round().clamp(1, w).long()
    top = (draw() * (h - eh + 1)).floor().long()
    left = (draw() * (w - ew + 1)).floor().long()
    erased = draw() < p
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    inside = (((rows >= top[:, None]) & (rows < (top + eh)[:, None]))[:, :, None]
              & ((cols >= left[:, None]) & (cols < (left + ew)[:, None]))[:, None, :])
    return x.masked_fill((inside & erased[:, None, None])[:, None], 0.0)


def batch_mix(mixup_alpha: float, cutmix_alpha: float, num_classes: int):
    """torchvision's MixUp and CutMix for training batches (either, chosen per batch when both are on): images
    and integer labels in, mixed images and soft labels out. None when both are off."""
    if not mixup_alpha and not cutmix_alpha:
        return None
    from torchvision.transforms import v2

    mixes = ([v2.MixUp(alpha=mixup_alpha, num_classes=num_classes)] if mixup_alpha else []) + \
            ([v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes)] if cutmix_alpha else [])
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)


class BatchTransform:
    """uint8 (N, C, H, W) -> float32, resized, optionally augmented, normalized, optionally erased."""

    def __init__(self, mean, std, size: int | None = None, augment: bool = False, normalize: bool = True,
                 erase: float = 0.0, crop_padding: int = CROP_PADDING):
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
        self.size = size
        self.augment = augment
        self.crop_padding = crop_padding
        self.normalize = normalize
        self.erase = erase

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.float().div_(255)
        if self.size is not None:
            x = resize(x, self.size)
        if self.augment:
            x = random_flip(x, generator)
            if self.crop_padding:
                x = random_crop(x, generator, self.crop_padding)
        if self.normalize:
            if self.mean.device != x.device:  # once: afterwards every batch lives on this device
                self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
            x = (x - self.mean) / self.std
        if self.erase:
            x = random_erasing(x, generator, self.erase)
        return x
