"""What the data package is told: one frozen `DataSettings`, made by the command from the validated `data` section
(`DataSettings.from_mapping`). Nothing under data/ reads a config object."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from .transforms import CROP_PADDING

MISSING = "???"  # a required value nobody gave (data.root of image_folder)


@dataclass(frozen=True)
class DataSettings:
    name: str
    image_size: int
    in_chans: int | None  # None for image_folder until the folder is read
    num_classes: int | None
    batch_size: int = 256
    eval_batch_size: int = 1024
    val_split: float = 0.1  # a count (> 1) or a fraction of the training set; 0 = validate on the test set
    split_seed: int = 42
    resize: int | None = None
    augment: bool = False
    crop_padding: int = CROP_PADDING
    permute_pixels: bool = False
    normalize: bool = True
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    random_erasing: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    root: str | None = None  # the files' folder (file datasets, image_folder)
    download: bool = False
    num_workers: int | str = "auto"  # image_folder's decoding processes
    num_train: int = 2000  # synthetic: images generated
    num_test: int = 500
    noise: float = 0.5
    seed: int = 1234
    drop_last: bool = False  # the training loader leaves out a last, smaller batch (one batch shape: torch.compile)

    @classmethod
    def from_mapping(cls, values: Mapping, **changes) -> DataSettings:
        """The settings of a `data` section given as plain values (keys the settings do not know are an error)."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"unknown data settings: {', '.join(unknown)}")
        plain = {key: _plain(values[key]) for key in values}
        if plain.get("root") == MISSING:
            plain["root"] = None
        return cls(**{**plain, **changes})

    @property
    def input_size(self) -> int:
        """Side length of the images the model receives: `resize` if set, else the native size."""
        return int(self.resize or self.image_size)

    def replace(self, **changes) -> DataSettings:
        return dataclasses.replace(self, **changes)


def _plain(value):
    if isinstance(value, list | tuple):
        return tuple(value)
    return value
