"""Where the numbers go (cnnbench.engine.output): metrics.csv, TensorBoard, the console row, HParams, per class."""

from __future__ import annotations

import csv
import io

import pytest
import torch
from rich.console import Console

from cnnbench.engine.confusion import confusion_image
from cnnbench.engine.metrics import EPOCH_KEYS
from cnnbench.engine.output import RunLogger, per_class_accuracy
from tests.conftest import hparams_of


def epoch_metrics(epoch: int) -> dict[str, float]:
    return {key: epoch + i / 10 for i, key in enumerate(EPOCH_KEYS)}


def console() -> Console:
    return Console(file=io.StringIO(), width=200)


def read_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.reader(f))


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_each_epoch_is_a_csv_row_a_scalar_per_key_and_a_console_row(tmp_path):
    out = console()
    logger = RunLogger(tmp_path, out)
    for epoch in (1, 2):
        logger.log_epoch(epoch, epoch_metrics(epoch), is_best=epoch == 1)
    logger.close()
    rows = read_rows(tmp_path)
    assert rows[0] == ["epoch", *EPOCH_KEYS] and [row[0] for row in rows[1:]] == ["1", "2"]
    assert float(rows[2][EPOCH_KEYS.index("val/acc") + 1]) == pytest.approx(epoch_metrics(2)["val/acc"])
    assert {tag: [step for step, _ in values] for tag, values in scalars(tmp_path).items()} == \
        dict.fromkeys(EPOCH_KEYS, [1, 2])
    printed = out.file.getvalue().splitlines()
    assert printed[0].split() == ["epoch", "lr", "train/loss", "train/acc", "val/loss", "val/acc", "img/s", "time"]
    assert printed[1].endswith("★ best") and not printed[2].endswith("★ best")


def test_a_resumed_logger_drops_the_rows_and_events_after_the_epoch_it_resumes_from(tmp_path):
    first = RunLogger(tmp_path, console())
    for epoch in (1, 2, 3):
        first.log_epoch(epoch, epoch_metrics(epoch), is_best=False)
    first.close()
    resumed = RunLogger(tmp_path, console(), resume_epoch=1)  # last.pt was written after epoch 1
    for epoch in (2, 3):
        resumed.log_epoch(epoch, epoch_metrics(epoch + 10), is_best=False)
    resumed.close()
    assert [row[0] for row in read_rows(tmp_path)[1:]] == ["1", "2", "3"]
    assert scalars(tmp_path)["lr"] == [(1, pytest.approx(1.0)), (2, pytest.approx(12.0)), (3, pytest.approx(13.0))]


def test_hparams_name_the_runs_own_scalars_and_write_no_copies(tmp_path):
    logger = RunLogger(tmp_path, console())
    logger.log_epoch(1, epoch_metrics(1), is_best=True)
    logger.log_test({"test/loss": 0.3, "test/acc": 0.9}, step=1)
    logger.log_hparams({"model": "lenet5", "optimizer.lr": 0.1})
    logger.close()
    metric_tags, values = hparams_of(tmp_path)
    assert metric_tags == ["val/acc_best", "test/acc"] and values == {"model": "lenet5", "optimizer.lr": 0.1}
    assert set(scalars(tmp_path)) == {*EPOCH_KEYS, "test/loss", "test/acc"}


def test_per_class_accuracy_is_each_rows_diagonal_share_and_none_for_an_empty_class():
    confusion = torch.tensor([[3, 1, 0], [0, 0, 0], [1, 1, 2]])
    assert per_class_accuracy(confusion, ["a", "b", "c"]) == {"a": 0.75, "b": None, "c": 0.5}



@pytest.mark.parametrize("classes", [3, 10, 100])
def test_the_confusion_image_shades_each_cell_by_its_share_of_the_row(classes):
    confusion = torch.eye(classes, dtype=torch.int64) * 9
    confusion[0, 1] = 3  # row 0: 9 of 12 right
    image = confusion_image(confusion, [f"class {i}" for i in range(classes)], title="t")
    assert image.dtype.name == "uint8" and image.ndim == 3 and image.shape[2] == 3
    assert 200 <= image.shape[1] <= 800  # readable where TensorBoard shows it, whatever the class count
    darkness = 255 * 3 - image.astype(int).sum(2)  # the darker, the larger the share
    bottom_right = darkness[-12, -12]  # inside the last diagonal cell: its whole row
    assert bottom_right > darkness[5, -12]  # the title row stays white
