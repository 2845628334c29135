"""The run's one logger: every number of a run goes to its writers (TensorBoard, metrics.csv: rank 0 only) and its
console, under the one metric vocabulary of `metrics.py`. A logger without writers (the other ranks of a
data-parallel run, or a run that has not claimed its directory yet) only speaks to its console."""

from __future__ import annotations

import torch
from rich.console import Console

from .console import EpochRows, print_per_class
from .dashboard import HParam
from .writers import RunWriters


class RunLogger:
    def __init__(self, console: Console, writers: RunWriters | None = None):
        self.console = console
        self.writers = writers
        self.rows = EpochRows(console)

    def log_epoch(self, epoch: int, metrics: dict[str, float], is_best: bool) -> None:
        if self.writers is not None:
            self.writers.log_epoch(epoch, metrics)
        self.rows.print(epoch, metrics, is_best)

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        if self.writers is not None:
            self.writers.log_scalars(metrics, step)

    log_test = log_scalars

    def log_image(self, tag: str, image, step: int) -> None:
        if self.writers is not None:
            self.writers.log_image(tag, image, step)

    def note(self, text: str) -> None:
        """A line on the console between the epoch rows (a target reached, early stopping)."""
        self.console.print(text, highlight=False)

    def per_class(self, per_class: dict[str, float | None], confusion: torch.Tensor, title: str) -> None:
        print_per_class(self.console, per_class, confusion, title=title)

    def start_dashboard(self, config_yaml: str, overrides: list[str], hparams: list[HParam], step: int = 0) -> None:
        if self.writers is not None:
            self.writers.start_dashboard(config_yaml, overrides, hparams, step)

    def end_dashboard(self, summary: dict, status: str, step: int) -> None:
        if self.writers is not None:
            self.writers.end_dashboard(summary, status, step)

    def log_graph(self, model: torch.nn.Module, example: torch.Tensor) -> None:
        if self.writers is not None:
            self.writers.log_graph(model, example)

    def close(self) -> None:
        if self.writers is not None:
            self.writers.close()
