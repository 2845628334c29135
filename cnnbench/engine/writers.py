"""Where a run's numbers are kept: TensorBoard events (scalars, images, text, the graph, the HParams entry) and
metrics.csv, in the run directory."""

from __future__ import annotations

import csv
import logging
import time
import warnings
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from ..runtime.files import atomic_write
from . import metrics as m
from .dashboard import LAYOUT, HParam, code_block, summary_markdown, write_hparams

log = logging.getLogger(__name__)


def events_dir(run_dir: Path) -> Path:
    """Where a run's event files are: the run directory itself, so that TensorBoard names the run after it (a sweep
    job's directory carries its overrides); runs written before that keep theirs in <run dir>/tensorboard/."""
    old = Path(run_dir) / "tensorboard"
    return old if old.is_dir() else Path(run_dir)


class RunWriters:
    """TensorBoard events in the run directory and metrics.csv."""

    def __init__(self, run_dir: Path, resume_epoch: int | None = None, rows: list[dict] | None = None):
        """`resume_epoch`: the last epoch a resumed run had finished; later events are dropped, and metrics.csv is
        rewritten from `rows` (the epochs' metrics as last.pt kept them, whatever a crash did to the file)."""
        self.run_dir = Path(run_dir)
        purge = None if resume_epoch is None else resume_epoch + 1
        self.events_dir = events_dir(self.run_dir)
        self.writer = SummaryWriter(log_dir=str(self.events_dir), purge_step=purge)
        self.hparams: list[HParam] = []
        self.started = time.time()
        self.csv_path = self.run_dir / "metrics.csv"
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

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        for key in m.EPOCH_KEYS:
            self.writer.add_scalar(key, metrics[key], epoch)
        self.writer.flush()
        self._append_csv(epoch, metrics)

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

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
