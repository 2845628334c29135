"""Per-class view of a trained model, and `python -m cnnbench.evaluate run=<run dir> [data.split=test|val]`.

The command reloads `checkpoints/best.pt` and the resolved config stored inside it, rebuilds the data
and the model, and prints the same test report as the end of training, without training.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from .errors import CnnbenchError, ConfigError, announce

log = logging.getLogger(__name__)

SPLITS = ("test", "val")


def per_class_accuracy(confusion: torch.Tensor, classes: list[str]) -> dict[str, float | None]:
    """Accuracy of each true class (row of the confusion matrix); None for a class with no images."""
    totals = confusion.sum(1)
    return {name: (confusion[i, i].item() / totals[i].item() if totals[i] else None)
            for i, name in enumerate(classes)}


def print_per_class(console: Console, per_class: dict[str, float | None], confusion: torch.Tensor,
                    title: str = "per-class accuracy") -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("class")
    table.add_column("accuracy", justify="right")
    table.add_column("correct / images", justify="right")
    for i, (name, acc) in enumerate(per_class.items()):
        table.add_row(name, "-" if acc is None else f"{acc:.1%}",
                      f"{confusion[i, i].item()} / {confusion[i].sum().item()}")
    console.print(table)


def confusion_figure(confusion: torch.Tensor, classes: list[str]):
    """A matplotlib figure of the row-normalised confusion matrix with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion.numpy()
    rates = counts / counts.sum(1, keepdims=True).clip(min=1)
    size = max(4.0, 0.5 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted", ylabel="true")
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    if len(classes) <= 20:
        for (i, j), count in np.ndenumerate(counts):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    return fig


def evaluate_run(run_dir: Path, overrides: list[str], console: Console) -> dict:
    """Evaluate a run's best checkpoint on `data.split` (test by default); returns the metrics."""
    from .checkpoint import load_checkpoint
    from .config import resolve_device, validate_config
    from .data import build_data
    from .engine import evaluate_with_confusion
    from .models import build_model

    checkpoint = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    cfg = OmegaConf.create(checkpoint["config"])
    split = "test"
    rest = []
    for override in overrides:
        key, _, value = override.partition("=")
        if key == "data.split":
            split = value
        else:
            rest.append(override)
    if split not in SPLITS:
        raise ConfigError(f"data.split={split} is not allowed: expected one of {', '.join(SPLITS)}")
    OmegaConf.set_struct(cfg, True)
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(rest))
    except Exception as err:  # omegaconf's ConfigKeyError and friends
        raise ConfigError(f"cannot apply {rest}: {str(err).splitlines()[0]}") from err
    validate_config(cfg)
    device = resolve_device(cfg.trainer.device)
    data = build_data(cfg.data, device, cfg.seed)
    model = build_model(cfg.model, cfg.data).to(device)
    model.load_state_dict(checkpoint["model"])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.trainer.label_smoothing)
    loader = data.test if split == "test" else data.val
    metrics, confusion = evaluate_with_confusion(model, loader, loss_fn, len(data.classes), prefix=split)
    per_class = per_class_accuracy(confusion, data.classes)
    console.print(f"{cfg.model.name} on {cfg.data.name} ({split}, {loader.num_examples:,} images), "
                  f"best checkpoint of epoch {checkpoint['epoch']}: {split}/acc {metrics[f'{split}/acc']:.4f}, "
                  f"{split}/loss {metrics[f'{split}/loss']:.4f}", highlight=False)
    print_per_class(console, per_class, confusion)
    return {**metrics, "per_class_acc": per_class, "epoch": checkpoint["epoch"]}


def parse_args(argv: list[str]) -> tuple[Path, list[str]]:
    run_dirs = [a.split("=", 1)[1] for a in argv if a.startswith("run=")]
    if len(run_dirs) != 1:
        raise ConfigError("usage: python -m cnnbench.evaluate run=<run dir> [data.split=test|val] [key=value ...]")
    others = [a for a in argv if not a.startswith("run=")]
    bad = [a for a in others if "=" not in a]
    if bad:
        raise ConfigError(f"'{bad[0]}' is not a key=value override")
    return Path(run_dirs[0]), others


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        run_dir, overrides = parse_args(sys.argv[1:] if argv is None else argv)
        evaluate_run(run_dir, overrides, Console(soft_wrap=True))
    except CnnbenchError as err:
        return announce(err, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
