"""Decoding for data=image_folder: torchvision's ImageFolder, one mode (L or RGB), one size, uint8 tensors.

Imported only when a folder is read (torchvision takes a second or more to import).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from ..errors import DataError
from .imagefiles import class_names, unreadable_error
from .stream import UNREADABLE

log = logging.getLogger(__name__)

SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
MODE_OF_CHANNELS = {1: "L", 3: "RGB"}


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """`image` in `mode` (L or RGB); 16-bit grayscale is scaled to 8 bits (PIL's own convert clips it)."""
    if image.mode in SIXTEEN_BIT_MODES:
        pixels = np.asarray(image, dtype=np.float32) / 257.0
        image = Image.fromarray(pixels.round().clip(0, 255).astype(np.uint8), "L")
    return image if image.mode == mode else image.convert(mode)


class OpenAs:
    """ImageFolder's loader: open a file, let JPEG decode at a reduced scale (still >= size), convert."""

    def __init__(self, mode: str, size: int):
        self.mode, self.size = mode, size

    def __call__(self, path: str) -> Image.Image:
        with Image.open(path) as image:
            image.draft(self.mode, (self.size, self.size))
            image.load()
            return to_mode(image, self.mode)


class FolderImages(ImageFolder):
    """ImageFolder items as (uint8 channels x size x size tensor, class index); hidden folders are not classes.

    A file PIL cannot decode gives a blank image labelled UNREADABLE instead of an exception, so that a
    DataLoader worker's failure reaches the training process as data; the loader then raises
    `unreadable_error(position)`, one line naming the file.
    """

    def __init__(self, folder: Path, channels: int, size: int, allow_empty: bool = False):
        transform = v2.Compose([v2.Resize((size, size), antialias=True), v2.PILToTensor()])
        try:
            super().__init__(str(folder), transform=transform, loader=OpenAs(MODE_OF_CHANNELS[channels], size),
                             allow_empty=allow_empty)
        except FileNotFoundError as err:  # a class folder without a single image file
            raise DataError(f"{folder}: {str(err).splitlines()[0]}") from err
        self.blank = torch.zeros((channels, size, size), dtype=torch.uint8)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        classes = class_names(Path(directory))
        return classes, {name: i for i, name in enumerate(classes)}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        try:
            return super().__getitem__(index)
        except Exception:  # PIL raises OSError, SyntaxError, ValueError... for a damaged file
            log.debug("cannot decode %s", self.samples[index][0], exc_info=True)
            return self.blank, UNREADABLE

    def unreadable_error(self, index: int) -> DataError:
        return unreadable_error(self.samples[index][0])
