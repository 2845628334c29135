"""The fixed train/val split every dataset shares: `data.val_split` images of the training set, by `data.split_seed`."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def validation_count(val_split, num_train: int) -> int:
    """`data.val_split` (validated: a count >= 0 or a fraction in (0, 1); 0 = none) as a number of images."""
    count = round(val_split * num_train) if isinstance(val_split, float) and val_split < 1 else int(val_split)
    if count >= num_train:
        raise ConfigError(f"data.val_split={val_split} leaves no training images (the training set has {num_train})")
    return count


def split_positions(num_train: int, val_split, split_seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Positions kept for training and held out for validation (None when there are none), the same as
    torch.utils.data.random_split(range(num_train), [n - k, k], manual_seed(split_seed))."""
    count = validation_count(val_split, num_train)
    if count == 0:
        return torch.arange(num_train), None
    order = torch.randperm(num_train, generator=torch.Generator().manual_seed(int(split_seed)))
    return order[: num_train - count], order[num_train - count:]
