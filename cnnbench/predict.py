"""`python -m cnnbench.predict run=<run dir> images=<file, folder or glob> [topk=3] [out=<csv>]
[predict.invert=auto|true|false] [batch_size=256] [trainer.device=cpu]`: what a trained run says of your images.

The run's best checkpoint (its averaged weights when it kept an EMA) and its saved config decide everything: each
image is decoded with Pillow whatever its format, converted to the run's channels, resized to its native size, then
put through the run's own evaluation transform (data.resize, mean and std) and test-time augmentation, at its
precision. A folder laid out as `<class name>/<images>` with the run's class names also gets the accuracy against
those labels. An image that cannot be read is one row with the reason; the others go on.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from .cli import run_command
from .config import data_settings
from .data import batch_transforms
from .data.single import INVERT_CHOICES, image_files, load_image
from .engine.confusion import per_class_accuracy
from .engine.console import print_per_class
from .engine.loop import predict as logits_of
from .engine.setup import use_amp
from .errors import CnnbenchError, ConfigError
from .evaluate import Trained, load_trained
from .runtime.files import atomic_write
from .runtime.overrides import parse_overrides, path_argument

USAGE = ("usage: python -m cnnbench.predict run=<run dir> images=<file, folder or glob> [topk=3] [out=<csv>] "
         "[predict.invert=auto|true|false] [batch_size=256] [trainer.device=<device>]")
SHOWN_ROWS = 30  # the console shows this many predictions; the CSV has them all


@dataclass
class Prediction:
    path: Path
    label: str | None = None  # the class folder it was found in, when the folder is laid out by class
    top: list[tuple[int, float]] = field(default_factory=list)  # (class index, probability), best first
    error: str | None = None


def predict_images(trained: Trained, files: list[Path], labels: list[str | None], topk: int, invert: str,
                   batch_size: int, console: Console) -> list[Prediction]:
    settings = data_settings(trained.cfg)
    transform = batch_transforms(settings)[1]
    device = next(trained.model.parameters()).device
    amp = use_amp(trained.cfg.trainer.get("amp", "auto"), device)
    predictions = [Prediction(path, label) for path, label in zip(files, labels, strict=True)]
    with Progress(console=console, transient=True, disable=len(files) <= batch_size) as progress:
        task = progress.add_task("predicting", total=len(files))
        for start in range(0, len(files), batch_size):
            batch = predictions[start:start + batch_size]
            images = []
            for prediction in batch:
                try:
                    images.append(load_image(prediction.path, int(settings.in_chans), int(settings.image_size),
                                             settings.name, invert))
                except CnnbenchError as err:
                    prediction.error = str(err)
            readable = [p for p in batch if p.error is None]
            if readable:
                x = transform(torch.stack(images).to(device))
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    probabilities = logits_of(trained.model, x, trained.cfg.trainer.get("tta", "none")).float()
                probabilities = probabilities.softmax(1).cpu()
                values, indices = probabilities.topk(min(topk, probabilities.shape[1]), dim=1)
                for prediction, row_values, row_indices in zip(readable, values, indices, strict=True):
                    prediction.top = list(zip(row_indices.tolist(), row_values.tolist(), strict=True))
            progress.advance(task, len(batch))
    return predictions


def write_predictions(predictions: list[Prediction], classes: list[str], out: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "class_index", "class_name", "probability", "top_k", "label", "error"])
    for p in predictions:
        best = p.top[0] if p.top else None
        top_k = ";".join(f"{classes[i]}:{prob:.4f}" for i, prob in p.top)
        writer.writerow([str(p.path.absolute()), best[0] if best else "", classes[best[0]] if best else "",
                         f"{best[1]:.6f}" if best else "", top_k, p.label or "", p.error or ""])
    try:
        atomic_write(out, lambda tmp: Path(tmp).write_text(buffer.getvalue()))
    except OSError as err:
        raise CnnbenchError(f"cannot write {out}: {err.strerror or err}; choose another out=") from err


def show(predictions: list[Prediction], classes: list[str], console: Console, base: Path | None) -> None:
    table = Table(title=f"{len(predictions)} image{'s' if len(predictions) != 1 else ''}", title_justify="left")
    for name, justify in (("file", "left"), ("class", "left"), ("probability", "right"), ("then", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for p in predictions[:SHOWN_ROWS]:
        name = str(p.path.relative_to(base)) if base and p.path.is_relative_to(base) else p.path.name
        if p.error:
            table.add_row(name, "-", "-", p.error, style="yellow")
        else:
            then = ", ".join(f"{classes[i]} {prob:.1%}" for i, prob in p.top[1:])
            table.add_row(name, classes[p.top[0][0]], f"{p.top[0][1]:.1%}", then)
    console.print(table)
    if len(predictions) > SHOWN_ROWS:
        console.print(f"... and {len(predictions) - SHOWN_ROWS} more (all in the CSV)", highlight=False)


def show_accuracy(predictions: list[Prediction], classes: list[str], console: Console) -> dict:
    """Accuracy against the class folders, overall and per class (unreadable images left out)."""
    scored = [p for p in predictions if p.label is not None and p.top]
    if not scored:
        return {}
    confusion = torch.zeros(len(classes), len(classes), dtype=torch.int64)
    for p in scored:
        confusion[classes.index(p.label), p.top[0][0]] += 1
    accuracy = confusion.diag().sum().item() / len(scored)
    per_class = per_class_accuracy(confusion, classes)
    print_per_class(console, per_class, confusion,
                    title=f"accuracy against the class folders: {accuracy:.4f} ({len(scored)} images)")
    return {"accuracy": accuracy, "per_class": {name: acc for name, acc in per_class.items() if acc is not None}}


def folder_labels(files: list[Path], folder: Path | None, classes: list[str]) -> list[str | None]:
    """Each file's class when `folder` is laid out as <class name>/<images> with the run's class names (a name a
    folder cannot hold, `T-shirt/top`, matches `T-shirt_top`: letters and digits are compared)."""
    if folder is None:
        return [None] * len(files)
    by_slug = {_slug(name): name for name in classes}
    firsts = [p.relative_to(folder).parts[0] if len(p.relative_to(folder).parts) > 1 else None for p in files]
    labels = [by_slug.get(_slug(first)) if first else None for first in firsts]
    return labels if labels and all(labels) else [None] * len(files)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def parse_args(argv: list[str]) -> tuple[Path, str, dict, list[str]]:
    runs, rest = path_argument(argv, "run")
    images = [arg.partition("=")[2] for arg in rest if arg.startswith("images=")]
    rest = [arg for arg in rest if not arg.startswith("images=")]
    if len(runs) != 1 or len(images) != 1 or not images[0]:
        raise ConfigError(USAGE)
    options = {"topk": 3, "out": None, "predict.invert": "auto", "batch_size": 256}
    overrides = []
    for override in parse_overrides(rest):
        if override.key in options:
            options[override.key] = override.value
        elif override.key == "trainer.device" and not override.prefix:
            overrides.append(override.text)
        else:
            raise ConfigError(f"{override.text} is not an option here; {USAGE}")
    for key in ("topk", "batch_size"):
        if not str(options[key]).isdigit() or int(options[key]) < 1:
            raise ConfigError(f"{key}={options[key]} is not allowed: expected an integer >= 1")
        options[key] = int(options[key])
    if str(options["predict.invert"]).lower() not in INVERT_CHOICES:
        raise ConfigError(f"predict.invert={options['predict.invert']} is not allowed: expected one of "
                          f"{', '.join(INVERT_CHOICES)}")
    return runs[0], images[0], options, overrides


def predict_command(argv: list[str]) -> list[Prediction]:
    if any(arg in ("-h", "--help") for arg in argv):
        print(f"{USAGE}\n\n{__doc__.strip()}")
        return []
    run_dir, images, options, overrides = parse_args(argv)
    trained = load_trained(run_dir, ["trainer.devices=1", *overrides])  # one process asks
    files, folder = image_files(images)
    if not files:
        raise ConfigError(f"images={images} matches no image file (a file, a folder of .png/.jpg/... images, or a "
                          "glob such as 'photos/*.jpg')")
    console = Console(soft_wrap=not sys.stdout.isatty())
    labels = folder_labels(files, folder, trained.classes)
    predictions = predict_images(trained, files, labels, options["topk"], str(options["predict.invert"]).lower(),
                                 options["batch_size"], console)
    show(predictions, trained.classes, console, folder)
    show_accuracy(predictions, trained.classes, console)
    out = Path(str(options["out"])).expanduser() if options["out"] else run_dir / "predictions.csv"
    write_predictions(predictions, trained.classes, out)
    unreadable = sum(p.error is not None for p in predictions)
    console.print(f"{trained.cfg.model.name} of {run_dir} (best epoch {trained.epoch}); wrote {out.absolute()}"
                  + (f"; {unreadable} unreadable" if unreadable else ""), highlight=False)
    return predictions


def main(argv: list[str] | None = None) -> int:
    return run_command(predict_command, argv)


if __name__ == "__main__":
    sys.exit(main())
