"""Data: sources -> fixed train/val split -> device-resident loaders with batched transforms."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..runtime.distributed import ONE_PROCESS, Ranks
from .folder import FolderLoader, folder_layout, open_images, training_split, worker_count
from .loader import DeviceLoader
from .settings import DataSettings
from .sources import SOURCE_NAMES, ImageSet, Source, load_source
from .split import split_positions, validation_count
from .transforms import BatchTransform

__all__ = ["SOURCE_NAMES", "DataBundle", "DataSettings", "DeviceLoader", "FolderLoader", "build_data", "input_size",
           "split_train_val", "validation_count"]


@dataclass
class DataBundle:
    train: DeviceLoader | FolderLoader
    val: DeviceLoader | FolderLoader
    test: DeviceLoader | FolderLoader
    classes: list[str]
    input_shape: tuple[int, int, int]  # (C, H, W) as the model sees it
    val_is_test: bool
    origin: str | None = None  # where the images came from


def input_size(data) -> int:
    """Side length of the images the model receives: `resize` if set, else the native size (of DataSettings, or of
    a config's `data` section)."""
    return int(data.resize or data.image_size)


def split_train_val(train: ImageSet, val_split, split_seed: int) -> tuple[ImageSet, ImageSet | None]:
    """Fixed split, the same as torch.utils.data.random_split(train, [n - k, k], manual_seed(split_seed))."""
    kept, held_out = split_positions(len(train), val_split, split_seed)
    if held_out is None:
        return train, None
    return train.subset(kept), train.subset(held_out)


def permute_pixels(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """Reorder the H*W pixel positions of every image (all channels alike) by one permutation."""
    n, c, h, w = images.shape
    return images.reshape(n, c, h * w)[:, :, permutation].reshape(n, c, h, w)


def pixel_permutation(height: int, width: int, seed: int) -> torch.Tensor:
    return torch.randperm(height * width, generator=torch.Generator().manual_seed(int(seed)))


def augment_generator(device: torch.device, seed: int, ranks: Ranks) -> torch.Generator | None:
    """Each rank of a data-parallel run augments with its own random stream (one process: the order's)."""
    if ranks.world_size == 1:
        return None
    return torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + ranks.rank + 1)


def batch_transforms(data: DataSettings) -> tuple[BatchTransform, BatchTransform]:
    """The training transform (augmented when `augment`) and the evaluation one."""
    common = dict(mean=data.mean, std=data.std, size=data.input_size, normalize=data.normalize)
    train = BatchTransform(augment=data.augment, erase=float(data.random_erasing), crop_padding=int(data.crop_padding),
                           **common)
    return train, BatchTransform(augment=False, **common)


def build_data(data: DataSettings, device: torch.device, seed: int, ranks: Ranks = ONE_PROCESS) -> DataBundle:
    """The train/val/test loaders of `data`; in a data-parallel run, this rank's shards of them."""
    bundle = build_folder_data(data, device, seed, ranks) if data.name == "image_folder" else \
        build_tensor_data(data, device, seed, ranks)
    bundle.train.drop_last = data.drop_last
    return bundle


def build_tensor_data(data: DataSettings, device: torch.device, seed: int, ranks: Ranks) -> DataBundle:
    """A dataset held as one tensor on the device, split and batched there."""
    source: Source = load_source(data)
    if data.permute_pixels:
        # seed 002, experiment 5: the same shuffle of pixel positions for train and test images
        permutation = pixel_permutation(*source.train.images.shape[-2:], data.split_seed)
        source.train.images = permute_pixels(source.train.images, permutation)
        source.test.images = permute_pixels(source.test.images, permutation)
    train_set, val_set = split_train_val(source.train, data.val_split, data.split_seed)
    size = data.input_size
    train_transform, eval_transform = batch_transforms(data)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    eval_batch = int(data.eval_batch_size)
    test = DeviceLoader(source.test, eval_batch, eval_transform, device, ranks=ranks)
    return DataBundle(
        train=DeviceLoader(train_set, int(data.batch_size), train_transform, device, shuffle=True,
                           generator=generator, ranks=ranks,
                           augment_generator=augment_generator(device, seed, ranks)),
        val=test if val_set is None else DeviceLoader(val_set, eval_batch, eval_transform, device, ranks=ranks),
        test=test,
        classes=source.classes,
        input_shape=(int(data.in_chans), size, size),
        val_is_test=val_set is None,
        origin=source.origin,
    )


def build_folder_data(data: DataSettings, device: torch.device, seed: int, ranks: Ranks) -> DataBundle:
    """data=image_folder: loaders that stream the folder's images from disk, through the same batch transforms.

    Without a val/ folder, validation is a fixed split of train/; without a test/ folder, the test set is
    the validation set (and with data.val_split=0, validation uses test/)."""
    layout = folder_layout(data)  # the run's preparation filled in_chans, num_classes, mean, std from it
    channels, size = int(data.in_chans), int(data.image_size)
    train_images = open_images(layout.train, channels, size)
    kept, held_out = training_split(data, layout, len(train_images))
    train_transform, eval_transform = batch_transforms(data)
    workers = worker_count(data.num_workers)

    def evaluation(images, positions: torch.Tensor | None = None) -> FolderLoader:
        return FolderLoader(images, positions, int(data.eval_batch_size), eval_transform, device, workers,
                            ranks=ranks)

    val = evaluation(train_images, held_out.sort().values) if held_out is not None else None  # file order
    if layout.val is not None:
        val = evaluation(open_images(layout.val, channels, size, allow_empty=True))
    test = evaluation(open_images(layout.test, channels, size, allow_empty=True)) if layout.test else val
    train = FolderLoader(train_images, kept, int(data.batch_size), train_transform, device, workers, shuffle=True,
                         generator=torch.Generator(device=device).manual_seed(int(seed)), ranks=ranks,
                         augment_generator=augment_generator(device, seed, ranks))
    val = test if val is None else val
    return DataBundle(train=train, val=val, test=test, classes=layout.classes,
                      input_shape=(channels, data.input_size, data.input_size), val_is_test=val is test,
                      origin=str(layout.train.parent))
