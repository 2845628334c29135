"""`data=image_folder`: a user's own images in torchvision's ImageFolder layout, streamed from disk.

    <root>/train/<class>/<image>   required; the sorted class folders are the classes
    <root>/val/<class>/<image>     optional; without it, a fixed split of train/ (data.val_split)
    <root>/test/<class>/<image>    optional; without it, the validation images are the test set

`folder_facts` reads from the folder what a config leaves null (the channels, the class count and, with
normalisation, the mean and std), for the run's preparation to fill in. DataLoader workers decode each image,
convert it to one mode (L or RGB) and resize it to data.image_size; the uint8 batches then go through the same
on-device BatchTransform as the in-memory datasets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from ..errors import ConfigError, DataError
from .imagefiles import class_names, first_image, image_channels
from .settings import DataSettings
from .split import split_positions
from .stream import FolderLoader, unreadable_position

__all__ = ["FolderLayout", "FolderLoader", "folder_facts", "open_images", "training_split", "worker_count"]

CHANNEL_CHOICES = (1, 3)
STATS_IMAGES = 1000  # training images measured for a null data.mean / data.std
MAX_AUTO_WORKERS = 8


@dataclass(frozen=True)
class FolderLayout:
    train: Path
    val: Path | None
    test: Path | None
    classes: list[str]


# --- the folder: layout, classes, channels ------------------------------------------------------------------

def folder_root(data: DataSettings) -> Path:
    root = data.root
    if not isinstance(root, str) or not root.strip():
        raise ConfigError("data.root is required for data=image_folder: the folder that holds train/ (and "
                          "optionally val/ and test/) with one sub-folder per class, e.g. data.root=~/my_images")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"data.root={root} is not a folder: give the folder that holds train/ (and optionally "
                        "val/ and test/) with one sub-folder per class")
    return path


def folder_layout(data: DataSettings) -> FolderLayout:
    """Which of train/, val/, test/ exist under data.root and the classes, checked alike in all three."""
    root = folder_root(data)
    train = root / "train"
    if not train.is_dir():
        raise DataError(f"data.root={data.root} has no train/ folder: put the training images in "
                        f"{train}/<class name>/, one folder per class")
    classes = class_names(train)
    if len(classes) < 2:
        found = f"only one class folder ({classes[0]})" if classes else "no class folders"
        raise DataError(f"{train} has {found}: it needs one sub-folder per class (at least 2), each holding "
                        "that class's images")
    return FolderLayout(train, _same_classes(root / "val", train, classes),
                        _same_classes(root / "test", train, classes), classes)


def _same_classes(folder: Path, train: Path, classes: list[str]) -> Path | None:
    if not folder.is_dir():
        return None
    found = class_names(folder)
    if found != classes:
        missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
        differences = [f"{what} {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
                       for what, names in (("lacks", missing), ("has the extra", extra)) if names]
        raise DataError(f"{folder} {' and '.join(differences)} (class folders must match those of {train})")
    return folder


# --- what the folder says: filled into the settings -----------------------------------------------------------

def open_images(folder: Path, channels: int, size: int, allow_empty: bool = False):
    """The FolderImages of one split folder (decoding lives in .images, which imports torchvision)."""
    from .images import FolderImages

    return FolderImages(folder, channels, size, allow_empty)


def worker_count(setting) -> int:
    """`data.num_workers`: auto = min(8, CPU cores)."""
    return min(MAX_AUTO_WORKERS, os.cpu_count() or 1) if setting == "auto" else int(setting)


def training_split(data: DataSettings, layout: FolderLayout, count: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Positions of train/ used for training and (without a val/ folder) held out for validation."""
    if layout.val is not None:
        return torch.arange(count), None
    kept, held_out = split_positions(count, data.val_split, data.split_seed)
    if held_out is None and layout.test is None:
        raise ConfigError(f"data.val_split={data.val_split} is not allowed: expected a count or fraction that "
                          f"holds out at least one image, as {layout.train.parent} has no val/ or test/ folder")
    return kept, held_out


def folder_facts(data: DataSettings, normalization: bool = True) -> dict:
    """`num_classes`, `in_chans` and, with `normalization`, `mean` and `std` as the folder gives them (values
    already set are checked against the folder instead and kept: a run's saved config passes unchanged)."""
    if data.permute_pixels:
        raise ConfigError("data.permute_pixels=true is not allowed: expected false for data=image_folder "
                          "(its images are streamed from disk, not held as one tensor)")
    layout = folder_layout(data)
    facts = {"num_classes": _class_count(data.num_classes, layout), "in_chans": _channels(data.in_chans, layout)}
    if normalization:
        facts.update(_mean_std(data.replace(**facts), layout))
    return facts


def _class_count(value, layout: FolderLayout) -> int:
    count = len(layout.classes)
    if value is not None and value != count:
        raise ConfigError(f"data.num_classes={value} is not allowed: expected null or {count}, the number of "
                          f"class folders in {layout.train}")
    return count


def _channels(value, layout: FolderLayout) -> int:
    if value is None:
        return image_channels(first_image(layout.train, layout.classes))
    if value not in CHANNEL_CHOICES or isinstance(value, bool):
        raise ConfigError(f"data.in_chans={value} is not allowed: expected null (from the images), 1 (grayscale) "
                          "or 3 (RGB) for data=image_folder")
    return value


def _mean_std(data: DataSettings, layout: FolderLayout) -> dict:
    if data.mean is not None and data.std is not None:
        return {"mean": list(data.mean), "std": list(data.std)}
    channels = int(data.in_chans)
    if data.normalize:
        mean, std = measure_mean_std(data, layout)
    else:  # not used; identity values keep the per-channel check meaningful
        mean, std = [0.0] * channels, [1.0] * channels
    return {"mean": list(data.mean) if data.mean is not None else mean,
            "std": list(data.std) if data.std is not None else std}


def measure_mean_std(data: DataSettings, layout: FolderLayout) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the pixels (in [0, 1]) of up to STATS_IMAGES training images, evenly spaced."""
    images = open_images(layout.train, int(data.in_chans), int(data.image_size))
    kept, _ = training_split(data, layout, len(images))
    spaced = torch.linspace(0, len(kept) - 1, min(STATS_IMAGES, len(kept))).round().long()
    picked = sorted(kept[spaced].tolist())  # in file order: sequential reads
    loader = DataLoader(Subset(images, picked), batch_size=100, num_workers=worker_count(data.num_workers))
    total = squares = torch.zeros(int(data.in_chans), dtype=torch.float64)
    pixels, start = 0, 0
    for batch, labels in loader:
        if (bad := unreadable_position(labels)) is not None:
            raise images.unreadable_error(picked[start + bad])
        x = batch.double().div_(255)
        total, squares = total + x.sum((0, 2, 3)), squares + x.square().sum((0, 2, 3))
        pixels, start = pixels + x[:, 0].numel(), start + len(labels)
    mean = total / pixels
    std = (squares / pixels - mean.square()).clamp_min(0).sqrt()
    return [round(v, 4) for v in mean.tolist()], [round(v, 4) for v in std.tolist()]
