"""One image file made into what a run's test set was: decoded with Pillow whatever its format, converted to the
run's channels, resized to its native square size, and (for the datasets of light objects on a black background,
when asked or when its border says so) inverted. The run's own evaluation transform does the rest on the device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError
from .images import MODE_OF_CHANNELS, to_mode

DARK_BACKGROUND = ("mnist", "fashion_mnist", "digits")  # light objects on black: a photo on white is inverted
INVERT_CHOICES = ("auto", "true", "false")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def light_border(image: Image.Image) -> bool:
    """Whether the pixels along the edge of a grayscale image are mostly light (a dark object on white paper)."""
    pixels = np.asarray(image, dtype=np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return float(border.mean()) > 127.5


def load_image(path: Path, channels: int, size: int, dataset: str, invert: str = "auto") -> torch.Tensor:
    """The uint8 tensor (channels, size, size) of one file; DataError naming the file when Pillow cannot read it."""
    try:
        with Image.open(path) as opened:
            opened.load()
            image = to_mode(ImageOps.exif_transpose(opened), MODE_OF_CHANNELS[channels])
    except Exception as err:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError, ... for a bad file
        raise DataError(f"not a readable image ({type(err).__name__}: {' '.join(str(err).split())[:120]})") from err
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    if dataset in DARK_BACKGROUND and (invert == "true" or invert == "auto" and light_border(image.convert("L"))):
        image = ImageOps.invert(image)
    array = np.asarray(image, dtype=np.uint8)
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def image_files(spec: str) -> tuple[list[Path], Path | None]:
    """The image files `images=` names (a file, a folder searched recursively, or a glob), sorted, and the folder
    they were found in (None for a file or a glob)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path], None
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        return files, path
    anchor = Path(path.anchor) if path.is_absolute() else Path(".")
    pattern = str(path.relative_to(anchor)) if path.is_absolute() else str(path)
    return sorted(p for p in anchor.glob(pattern) if p.is_file()), None
