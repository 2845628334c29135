"""Data: sources -> fixed train/val split -> device-resident loaders with batched transforms."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .loader import DeviceLoader
from .sources import SOURCE_NAMES, ImageSet, Source, load_source
from .transforms import BatchTransform

__all__ = ["SOURCE_NAMES", "DataBundle", "DeviceLoader", "build_data", "input_size", "split_train_val"]


@dataclass
class DataBundle:
    train: DeviceLoader
    val: DeviceLoader
    test: DeviceLoader
    classes: list[str]
    input_shape: tuple[int, int, int]  # (C, H, W) as the model sees it
    val_is_test: bool


def input_size(data_cfg) -> int:
    """Side length of the images the model receives: `data.resize` if set, else the native size."""
    return int(data_cfg.resize or data_cfg.image_size)


def validation_count(val_split, num_train: int) -> int:
    """`data.val_split` as a number of images: a count (int >= 1) or a fraction in (0, 1); 0 = none."""
    if isinstance(val_split, bool) or not isinstance(val_split, int | float) or val_split < 0:
        raise ConfigError(f"data.val_split must be a count >= 0 or a fraction in (0, 1), got {val_split!r}")
    count = round(val_split * num_train) if isinstance(val_split, float) and val_split < 1 else int(val_split)
    if count >= num_train:
        raise ConfigError(f"data.val_split={val_split} leaves no training images (the training set has {num_train})")
    return count


def split_train_val(train: ImageSet, val_split, split_seed: int) -> tuple[ImageSet, ImageSet | None]:
    """Fixed split, the same as torch.utils.data.random_split(train, [n - k, k], manual_seed(split_seed))."""
    count = validation_count(val_split, len(train))
    if count == 0:
        return train, None
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(int(split_seed)))
    return train.subset(order[: len(train) - count]), train.subset(order[len(train) - count:])


def permute_pixels(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """Reorder the H*W pixel positions of every image (all channels alike) by one permutation."""
    n, c, h, w = images.shape
    return images.reshape(n, c, h * w)[:, :, permutation].reshape(n, c, h, w)


def pixel_permutation(height: int, width: int, seed: int) -> torch.Tensor:
    return torch.randperm(height * width, generator=torch.Generator().manual_seed(int(seed)))


def build_data(data_cfg, device: torch.device, seed: int) -> DataBundle:
    source: Source = load_source(data_cfg)
    if data_cfg.get("permute_pixels", False):
        # seed 002, experiment 5: the same shuffle of pixel positions for train and test images
        permutation = pixel_permutation(*source.train.images.shape[-2:], data_cfg.split_seed)
        source.train.images = permute_pixels(source.train.images, permutation)
        source.test.images = permute_pixels(source.test.images, permutation)
    train_set, val_set = split_train_val(source.train, data_cfg.val_split, data_cfg.split_seed)
    size = input_size(data_cfg)
    common = dict(mean=data_cfg.mean, std=data_cfg.std, size=size, normalize=bool(data_cfg.normalize))
    train_transform = BatchTransform(augment=bool(data_cfg.augment), **common)
    eval_transform = BatchTransform(augment=False, **common)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    eval_batch = int(data_cfg.eval_batch_size)
    test = DeviceLoader(source.test, eval_batch, eval_transform, device)
    return DataBundle(
        train=DeviceLoader(train_set, int(data_cfg.batch_size), train_transform, device, shuffle=True,
                           generator=generator),
        val=test if val_set is None else DeviceLoader(val_set, eval_batch, eval_transform, device),
        test=test,
        classes=source.classes,
        input_shape=(int(data_cfg.in_chans), size, size),
        val_is_test=val_set is None,
    )
