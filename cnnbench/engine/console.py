"""What a run shows on the console: the config, the header, a progress bar per epoch, one row per epoch, notes,
the per-class table and the closing line."""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.syntax import Syntax
from rich.table import Table

from . import metrics as m

log = logging.getLogger(__name__)

# (header, metric key, format) of the console's epoch row, after the seeds' printouts.
ROW_FORMAT = (("epoch", "epoch", "{:>5d}"), ("lr", m.LR, "{:>9.5f}"), ("train/loss", m.TRAIN_LOSS, "{:>10.4f}"),
              ("train/acc", m.TRAIN_ACC, "{:>9.4f}"), ("val/loss", m.VAL_LOSS, "{:>8.4f}"),
              ("val/acc", m.VAL_ACC, "{:>7.4f}"), ("img/s", m.TRAIN_EXAMPLES_PER_S, "{:>8.0f}"),
              ("time", m.EPOCH_S, "{:>6.1f}s"))


class EpochProgress:
    """A rich progress bar over one epoch's batches, refreshed every `every` steps, with the time left in the
    epoch and (`description`) in the run; silent off a terminal."""

    def __init__(self, console: Console, every: int = 10):
        self.every = max(int(every), 1)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("epoch left"), TimeRemainingColumn(),
                                 console=console, transient=True, disable=not console.is_terminal)
        self.task = None

    def start(self, description: str, total: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task(description, total=total)

    def step(self, step: int) -> None:
        if step % self.every == 0:
            self.progress.update(self.task, completed=step)

    def stop(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        self.progress.stop()


class EpochRows:
    """One row per epoch under a header printed once, the best epochs marked."""

    def __init__(self, console: Console):
        self.console = console
        self.header_printed = False

    def print(self, epoch: int, metrics: dict[str, float], is_best: bool) -> None:
        values = {"epoch": epoch, **metrics}
        if not self.header_printed:
            header = " ".join(f"{name:>{len(fmt.format(0))}}" for name, _, fmt in ROW_FORMAT)
            self.console.print(header, style="bold", highlight=False)
            self.header_printed = True
        row = " ".join(fmt.format(values[key]) for _, key, fmt in ROW_FORMAT)
        mark = " ★ best" if is_best else ""
        self.console.print(row + mark, highlight=False, style="green" if is_best else None)
        log.info("epoch %s%s", row, mark)


def run_console(is_main: bool) -> Console:
    """The console of this process: rank 0 speaks for all ranks of a data-parallel run."""
    if is_main:
        return Console(soft_wrap=True)
    return Console(file=open(os.devnull, "w"), quiet=True)  # noqa: SIM115 (lives as long as the process)


def print_config(console: Console, yaml_text: str, shown: str | None = None) -> None:
    """The whole config to run.log; to the console `shown` (console.config: the differences, all, or nothing)."""
    log.info("config:\n%s", yaml_text)
    shown = yaml_text if shown is None else shown
    if not shown:
        return
    if console.is_terminal and shown == yaml_text:
        console.print(Syntax(yaml_text, "yaml", theme="ansi_dark", background_color="default"))
    else:
        console.print(shown, highlight=False, markup=False, end="")


def print_header(console: Console, summary: dict, run_dir: Path, resuming_at: str | None) -> None:
    """What is trained on what, where it writes; where a resumed run continues."""
    val = f"{summary['num_val']:,} val{' (= test)' if summary['val_is_test'] else ''}"
    console.print(
        f"[bold]{summary['model']}[/] on [bold]{summary['dataset']}[/]: {summary['params']:,} parameters, "
        f"{summary['num_train']:,} train / {val} / {summary['num_test']:,} test images of "
        f"{'x'.join(map(str, summary['input_shape']))}, device {summary['device']}, "
        f"run dir {escape(shlex.quote(str(run_dir)))}",
        highlight=False)
    if summary.get("data_from"):
        console.print(f"data from {summary['data_from']}", highlight=False)
    if resuming_at:
        console.print(resuming_at, highlight=False)


def print_result(console: Console, summary: dict, run_dir: Path, compiled: bool = False, short: bool = False) -> None:
    """The closing line: the test accuracy of the best checkpoint, and where the results are (`short`: a sweep's
    job, whose sweep names the leaderboard and TensorBoard commands once for all)."""
    if compiled:
        console.print(f"torch.compile: the first training step took {summary[m.FIRST_STEP_S]:.1f}s (compilation); "
                      f"later epochs ran at {summary[m.TRAIN_EXAMPLES_PER_S]:,.0f} img/s", highlight=False)
    result = (f"{m.TEST_ACC} {summary[m.TEST_ACC]:.4f} (best epoch {summary['best_epoch']}, "
              f"{m.VAL_ACC} {summary[m.VAL_ACC_BEST]:.4f}) in {summary[m.WALL_S]:.1f}s")
    if not short:
        curves = shlex.join(["tensorboard", "--logdir", str(run_dir)])
        result += f"; results in {shlex.quote(str(run_dir))}; curves: {curves}"
    console.print(result, style="bold", highlight=False)


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
