"""Where a run's numbers go: the console, TensorBoard, metrics.csv and the per-class table, all under the one
metric vocabulary of `metrics.py`."""

from __future__ import annotations

import csv
import logging
import os
import shlex
import time
import warnings
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.syntax import Syntax
from rich.table import Table
from torch.utils.tensorboard import SummaryWriter

from ..runtime.files import atomic_write
from . import metrics as m
from .dashboard import LAYOUT, HParam, code_block, summary_markdown, write_hparams

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


def events_dir(run_dir: Path) -> Path:
    """Where a run's event files are: the run directory itself, so that TensorBoard names the run after it (a sweep
    job's directory carries its overrides); runs written before that keep theirs in <run dir>/tensorboard/."""
    old = Path(run_dir) / "tensorboard"
    return old if old.is_dir() else Path(run_dir)


class RunLogger:
    """TensorBoard events in the run directory, metrics.csv and the console's epoch rows."""

    def __init__(self, run_dir: Path, console: Console, resume_epoch: int | None = None,
                 rows: list[dict] | None = None):
        """`resume_epoch`: the last epoch a resumed run had finished; later events are dropped, and metrics.csv is
        rewritten from `rows` (the epochs' metrics as last.pt kept them, whatever a crash did to the file)."""
        self.run_dir = Path(run_dir)
        self.console = console
        purge = None if resume_epoch is None else resume_epoch + 1
        self.events_dir = events_dir(self.run_dir)
        self.writer = SummaryWriter(log_dir=str(self.events_dir), purge_step=purge)
        self.hparams: list[HParam] = []
        self.started = time.time()
        self.csv_path = self.run_dir / "metrics.csv"
        self.header_printed = False
        if resume_epoch is not None:
            self._rewrite_csv(resume_epoch, rows or [])

    def _rewrite_csv(self, last_epoch: int, rows: list[dict]) -> None:
        if rows:
            lines = [[epoch, *(f"{metrics[key]:.6g}" for key in m.EPOCH_KEYS)]
                     for epoch, metrics in enumerate(rows[:last_epoch], start=1)]
        else:  # last.pt from before the rows were kept: keep the file's rows that can still be read
            text = self.csv_path.read_bytes().replace(b"\0", b"").decode("utf-8", "replace") \
                if self.csv_path.exists() else ""
            width = len(m.EPOCH_KEYS) + 1
            lines = [row for row in csv.reader(text.splitlines())
                     if len(row) == width and row[0].isdigit() and int(row[0]) <= last_epoch]

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows([["epoch", *m.EPOCH_KEYS], *lines])

        atomic_write(self.csv_path, write)

    def log_epoch(self, epoch: int, metrics: dict[str, float], is_best: bool) -> None:
        for key in m.EPOCH_KEYS:
            self.writer.add_scalar(key, metrics[key], epoch)
        self.writer.flush()
        self._append_csv(epoch, metrics)
        self._print_row(epoch, metrics, is_best)

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    log_test = log_scalars

    def log_image(self, tag: str, image, step: int) -> None:
        """An RGB uint8 array (H, W, 3) in TensorBoard's Images tab."""
        self.writer.add_image(tag, image, step, dataformats="HWC")
        self.writer.flush()

    def start_dashboard(self, config_yaml: str, overrides: list[str], hparams: list[HParam], step: int = 0) -> None:
        """The Custom Scalars layout, the config and overrides as text, and the run's HParams entry (running)."""
        self.hparams = hparams
        self.writer.add_custom_scalars(LAYOUT)
        self.writer.add_text("config", code_block(config_yaml), step)
        self.writer.add_text("overrides", code_block("\n".join(overrides)), step)
        self.writer.flush()
        write_hparams(self.events_dir, hparams, "running", self.started)

    def end_dashboard(self, summary: dict, status: str, step: int) -> None:
        """The summary as text and the HParams entry's ending: success, or failure for anything but completed."""
        self.writer.add_text("summary", summary_markdown(summary), step)
        self.writer.flush()
        if self.hparams:
            write_hparams(self.events_dir, self.hparams, status, self.started)

    def log_graph(self, model: torch.nn.Module, example: torch.Tensor) -> None:
        """The model's graph in the Graphs tab (traced once; the tracer's warnings go to run.log, not the console)."""
        training = model.training
        model.eval()  # BatchNorm after a linear layer refuses a training batch this small; no dropout draws
        try:
            with warnings.catch_warnings(record=True) as caught, torch.no_grad():
                warnings.simplefilter("always")
                self.writer.add_graph(model, example)
        finally:
            model.train(training)
        for warning in caught:
            log.debug("add_graph: %s", warning.message)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def _append_csv(self, epoch: int, metrics: dict[str, float]) -> None:
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            out = csv.writer(f)
            if new:
                out.writerow(["epoch", *m.EPOCH_KEYS])
            out.writerow([epoch, *(f"{metrics[key]:.6g}" for key in m.EPOCH_KEYS)])

    def _print_row(self, epoch: int, metrics: dict[str, float], is_best: bool) -> None:
        values = {"epoch": epoch, **metrics}
        if not self.header_printed:
            header = " ".join(f"{name:>{len(fmt.format(0))}}" for name, _, fmt in ROW_FORMAT)
            self.console.print(header, style="bold", highlight=False)
            self.header_printed = True
        row = " ".join(fmt.format(values[key]) for _, key, fmt in ROW_FORMAT)
        mark = " ★ best" if is_best else ""
        self.console.print(row + mark, highlight=False, style="green" if is_best else None)
        log.info("epoch %s%s", row, mark)


class NullLogger:
    """RunLogger's interface for ranks other than 0 of a data-parallel run: only rank 0 writes the run directory."""

    def __init__(self, console: Console):
        self.console = console

    def log_epoch(self, epoch: int, metrics: dict[str, float], is_best: bool) -> None:
        pass

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        pass

    log_test = log_scalars

    def log_image(self, tag: str, image, step: int) -> None:
        pass

    def start_dashboard(self, config_yaml: str, overrides: list[str], hparams: list[HParam], step: int = 0) -> None:
        pass

    def end_dashboard(self, summary: dict, status: str, step: int) -> None:
        pass

    def log_graph(self, model, example) -> None:
        pass

    def close(self) -> None:
        pass


# --- the console ---------------------------------------------------------------------------------------------

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


def print_header(console: Console, summary: dict, run_dir: Path, resuming_at: str | None,
                 sweep_job: str | None) -> None:
    """What is trained on what, where it writes; where a resumed run continues; which sweep job this is."""
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
    if sweep_job:
        console.print(sweep_job, style="bold", highlight=False)


def print_result(console: Console, summary: dict, run_dir: Path, compiled: bool = False) -> None:
    """The closing line: the test accuracy of the best checkpoint, and where the results are."""
    if compiled:
        console.print(f"torch.compile: the first training step took {summary[m.FIRST_STEP_S]:.1f}s (compilation); "
                      f"later epochs ran at {summary[m.TRAIN_EXAMPLES_PER_S]:,.0f} img/s", highlight=False)
    curves = shlex.join(["tensorboard", "--logdir", str(run_dir)])
    console.print(f"{m.TEST_ACC} {summary[m.TEST_ACC]:.4f} (best epoch {summary['best_epoch']}, "
                  f"{m.VAL_ACC} {summary[m.VAL_ACC_BEST]:.4f}) in {summary[m.WALL_S]:.1f}s; "
                  f"results in {shlex.quote(str(run_dir))}; curves: {curves}", style="bold", highlight=False)


# --- per class ---------------------------------------------------------------------------------------------------

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
