"""The confusion matrix as a picture for TensorBoard, drawn with PIL: rows are the true classes, columns the
predicted ones (by number), each cell coloured by its share of the row and labelled with it in percent.

TensorBoard scales an image down to its card (about 200-250 pixels wide on a laptop screen), so the picture is
small and its text large: two or three digits per cell stay readable where four-digit counts would not (the
counts are in summary.json and in the console's per-class table).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

LIGHT, DARK = np.array([247, 251, 255]), np.array([8, 48, 107])  # the ends of matplotlib's "Blues"
MAX_NAME = 12  # characters of a class name shown
GRID = 360  # pixels of the cells together, at most


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except TypeError:
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def confusion_image(confusion: torch.Tensor, classes: list[str], title: str = "") -> np.ndarray:
    """An RGB uint8 array (H, W, 3) of the row-normalised confusion matrix, each cell's percentage in it;
    `title` may have several lines (the run, its test accuracy)."""
    counts = confusion.numpy().astype(np.int64)
    rates = counts / counts.sum(1, keepdims=True).clip(min=1)
    n = len(classes)
    cell = int(np.clip(GRID // max(n, 1), 4, 40))
    cell_font, label_font = _font(max(cell // 2, 9)), _font(16)
    names = [f"{name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + '…'}  {i}" for i, name in enumerate(classes)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = (title.splitlines() or [""]) + ["rows: true class, columns: predicted, cells: % of the row"]
    line_height = _text_size(probe, "Xg", label_font)[1] + 6
    left = max(_text_size(probe, name, label_font)[0] for name in names) + 12
    top = len(lines) * line_height + 8 + line_height
    width = max(left + n * cell + 8, max(_text_size(probe, line, label_font)[0] for line in lines) + 12)
    image = Image.new("RGB", (width, top + n * cell + 8), "white")
    draw = ImageDraw.Draw(image)
    for k, line in enumerate(lines):
        draw.text((6, 4 + k * line_height), line, fill="black" if k < len(lines) - 1 else "gray", font=label_font)
    for i in range(n):
        y = top + i * cell
        draw.text((left - 6, y + cell // 2), names[i], fill="black", font=label_font, anchor="rm")
        for j in range(n):
            x = left + j * cell
            colour = tuple(int(v) for v in LIGHT + (DARK - LIGHT) * rates[i, j])
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=colour)
            if cell >= 20 and counts[i, j]:
                draw.text((x + cell // 2, y + cell // 2), f"{100 * rates[i, j]:.0f}", font=cell_font, anchor="mm",
                          fill="white" if rates[i, j] > 0.5 else "black")
    if cell >= 14:
        for j in range(n):
            draw.text((left + j * cell + cell // 2, top - 4), str(j), fill="black", font=label_font, anchor="mb")
    return np.asarray(image)


def per_class_accuracy(confusion: torch.Tensor, classes: list[str]) -> dict[str, float | None]:
    """Accuracy of each true class (row of the confusion matrix); None for a class with no images."""
    totals = confusion.sum(1)
    return {name: (confusion[i, i].item() / totals[i].item() if totals[i] else None)
            for i, name in enumerate(classes)}
