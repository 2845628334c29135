"""Image files on disk: class folders, the first image, its channels, and the one-line error for a bad file.

A leaf of data/: both the folder reader (folder.py) and the decoder (images.py) use it.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from ..errors import DataError

GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def class_names(folder: Path) -> list[str]:
    """The sub-folders of `folder`, sorted; hidden ones (.ipynb_checkpoints, .git) are not classes."""
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))


def first_image(train: Path, classes: list[str]) -> Path:
    """The first image file of the first class, in ImageFolder's order."""
    from torchvision.datasets.folder import IMG_EXTENSIONS  # imported here: torchvision takes a second or more

    for name in classes:
        for where, subfolders, files in os.walk(train / name, followlinks=True):
            subfolders.sort()
            images = sorted(f for f in files if f.lower().endswith(IMG_EXTENSIONS))
            if images:
                return Path(where) / images[0]
    raise DataError(f"{train} holds no image files ({', '.join(IMG_EXTENSIONS)})")


def image_channels(path: Path) -> int:
    """1 for a grayscale image (read from its header), else 3."""
    try:
        with Image.open(path) as image:
            mode = image.mode
    except Exception as err:  # PIL raises UnidentifiedImageError, OSError, SyntaxError... for a bad file
        raise unreadable_error(path, err) from err
    return 1 if mode in GRAYSCALE_MODES else 3


def unreadable_error(path: Path | str, err: Exception | None = None) -> DataError:
    """One line naming a file PIL cannot decode and why (decoding it again here when `err` is not known)."""
    if err is None:
        try:
            with Image.open(path) as image:
                image.load()
            return DataError(f"{path}: could not be read while loading batches; check the file and the disk")
        except Exception as again:  # the decoder's own error gives the reason
            err = again
    reason = " ".join(str(err).split())[:200]
    return DataError(f"{path}: not a readable image ({type(err).__name__}: {reason}); repair or remove the file")
