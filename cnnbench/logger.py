"""Where a run's numbers go: TensorBoard scalars, metrics.csv and the console, under one vocabulary."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.utils.tensorboard import SummaryWriter

from .checkpoint import atomic_write

log = logging.getLogger(__name__)

# Per-epoch metrics, in metrics.csv column order. TensorBoard tags are the same keys.
EPOCH_KEYS = ("lr", "train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best",
              "throughput/train_examples_per_s", "time/epoch_s")

# (header, metric key, format) of the console's epoch row, after the seeds' printouts.
ROW_FORMAT = (("epoch", "epoch", "{:>5d}"), ("lr", "lr", "{:>9.5f}"), ("train/loss", "train/loss", "{:>10.4f}"),
              ("train/acc", "train/acc", "{:>9.4f}"), ("val/loss", "val/loss", "{:>8.4f}"),
              ("val/acc", "val/acc", "{:>7.4f}"), ("img/s", "throughput/train_examples_per_s", "{:>8.0f}"),
              ("time", "time/epoch_s", "{:>6.1f}s"))


class EpochProgress:
    """A rich progress bar over one epoch's batches, refreshed every `every` steps; silent off a terminal."""

    def __init__(self, console: Console, every: int = 10):
        self.every = max(int(every), 1)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True,
                                 disable=not console.is_terminal)
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


class RunLogger:
    def __init__(self, run_dir: Path, console: Console, resume_epoch: int | None = None):
        """`resume_epoch`: the last epoch a resumed run had finished; later rows and events are dropped."""
        self.run_dir = Path(run_dir)
        self.console = console
        purge = None if resume_epoch is None else resume_epoch + 1
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=purge)
        self.csv_path = self.run_dir / "metrics.csv"
        self.header_printed = False
        if resume_epoch is not None:
            self._truncate_csv(resume_epoch)

    def _truncate_csv(self, last_epoch: int) -> None:
        if not self.csv_path.exists():
            return
        with open(self.csv_path, newline="") as f:
            rows = list(csv.reader(f))
        kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) <= last_epoch]
        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows(kept)

        atomic_write(self.csv_path, write)

    def log_epoch(self, epoch: int, metrics: dict[str, float], is_best: bool) -> None:
        for key in EPOCH_KEYS:
            self.writer.add_scalar(key, metrics[key], epoch)
        self.writer.flush()
        self._append_csv(epoch, metrics)
        self._print_row(epoch, metrics, is_best)

    def log_test(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_figure(self, tag: str, figure, step: int) -> None:
        self.writer.add_figure(tag, figure, step)
        self.writer.flush()

    def log_hparams(self, hparams: dict, metrics: dict[str, float]) -> None:
        """HParams-tab entry in this run's own event folder (run_name="." keeps it beside the curves)."""
        self.writer.add_hparams(hparams, metrics, run_name=".")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def _append_csv(self, epoch: int, metrics: dict[str, float]) -> None:
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            out = csv.writer(f)
            if new:
                out.writerow(["epoch", *EPOCH_KEYS])
            out.writerow([epoch, *(f"{metrics[key]:.6g}" for key in EPOCH_KEYS)])

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


def silent_console() -> Console:
    """The console of ranks other than 0 in a data-parallel run: rank 0 speaks for all."""
    return Console(file=open(os.devnull, "w"), quiet=True)  # noqa: SIM115 (lives as long as the process)


class NullLogger:
    """RunLogger's interface for ranks other than 0: only rank 0 writes the run directory."""

    def __init__(self, console: Console):
        self.console = console

    def log_epoch(self, epoch: int, metrics: dict[str, float], is_best: bool) -> None:
        pass

    def log_test(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_figure(self, tag: str, figure, step: int) -> None:
        pass

    def log_hparams(self, hparams: dict, metrics: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass
