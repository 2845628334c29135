"""Batched, on-device image transforms: uint8 batch in, normalized float batch out.

Order follows the seeds' torchvision pipelines: Resize (d2l) -> RandomHorizontalFlip ->
RandomCrop(size, padding=4) (seed 001) -> ToTensor + Normalize. Every random draw comes from one
`torch.Generator` on the batch's device, so a seed fixes the augmentation.
"""

from __future__ import annotations

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


class BatchTransform:
    """uint8 (N, C, H, W) -> float32, resized, optionally augmented, normalized."""

    def __init__(self, mean, std, size: int | None = None, augment: bool = False, normalize: bool = True):
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
        self.size = size
        self.augment = augment
        self.normalize = normalize

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.float().div_(255)
        if self.size is not None:
            x = resize(x, self.size)
        if self.augment:
            x = random_crop(random_flip(x, generator), generator)
        if self.normalize:
            if self.mean.device != x.device:  # once: afterwards every batch lives on this device
                self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
            x = (x - self.mean) / self.std
        return x
