"""The confusion matrix as a picture for TensorBoard, drawn with PIL: rows are the true classes, columns the
predicted ones, each cell coloured by its share of the row and labelled with its count.

Drawn at a size that stays readable where TensorBoard shows it (a few hundred pixels wide), in milliseconds.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

LIGHT, DARK = np.array([247, 251, 255]), np.array([8, 48, 107])  # the ends of matplotlib's "Blues"
MAX_NAME = 14  # characters of a class name shown
CORNER = "true \\ predicted"


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except TypeError:
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def confusion_image(confusion: torch.Tensor, classes: list[str], title: str = "") -> np.ndarray:
    """An RGB uint8 array (H, W, 3) of the row-normalised confusion matrix with counts in the cells."""
    counts = confusion.numpy().astype(np.int64)
    rates = counts / counts.sum(1, keepdims=True).clip(min=1)
    n = len(classes)
    cell = int(np.clip(480 // max(n, 1), 6, 64))
    font, small = _font(max(cell // 3, 10)), _font(max(min(cell // 3, 14), 9))
    names = [name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…" for name in classes]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    name_width = max(_text_size(probe, name, small)[0] for name in names) + 10
    corner_width, corner_height = _text_size(probe, CORNER, small)
    title_height = _text_size(probe, title or "x", small)[1] + 12
    left = max(name_width + 18, corner_width + 16)
    top = title_height + max(name_width, corner_height + 12)
    image = Image.new("RGB", (left + n * cell + 8, top + n * cell + 8), "white")
    draw = ImageDraw.Draw(image)
    draw.text((6, 4), title, fill="black", font=small)
    for i in range(n):
        y = top + i * cell
        draw.text((left - 8, y + cell // 2), names[i], fill="black", font=small, anchor="rm")
        for j in range(n):
            x = left + j * cell
            colour = tuple(int(v) for v in LIGHT + (DARK - LIGHT) * rates[i, j])
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=colour)
            if cell >= 20:
                draw.text((x + cell // 2, y + cell // 2), str(counts[i, j]), font=font, anchor="mm",
                          fill="white" if rates[i, j] > 0.5 else "black")
    for j, name in enumerate(names):  # column names, written upwards above their column
        width, height = _text_size(probe, name, small)
        label = Image.new("RGB", (width + 4, height + 6), "white")
        ImageDraw.Draw(label).text((2, 0), name, fill="black", font=small)
        rotated = label.rotate(90, expand=True)
        image.paste(rotated, (left + j * cell + (cell - rotated.width) // 2, top - rotated.height - 4))
    draw.text((left - 8, top - 6), CORNER, fill="gray", font=small, anchor="rb")
    return np.asarray(image)
