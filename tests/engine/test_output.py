"""Where the numbers go (cnnbench.engine.output): metrics.csv, TensorBoard, the console row, HParams, per class."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from rich.console import Console
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import api_pb2

from cnnbench.engine.confusion import DARK, LIGHT, confusion_image, per_class_accuracy
from cnnbench.engine.dashboard import HPARAMS_FILE, HParam
from cnnbench.engine.metrics import EPOCH_KEYS
from cnnbench.engine.output import RunLogger
from cnnbench.engine.writers import RunWriters, events_dir
from tests.conftest import hparams_of, tb_events, tb_scalars


def epoch_metrics(epoch: int) -> dict[str, float]:
    return {key: epoch + i / 10 for i, key in enumerate(EPOCH_KEYS)}


def console() -> Console:
    return Console(file=io.StringIO(), width=200)


def read_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.reader(f))


def test_each_epoch_is_a_csv_row_a_scalar_per_key_and_a_console_row(tmp_path):
    out = console()
    logger = RunLogger(out, RunWriters(tmp_path))
    for epoch in (1, 2):
        logger.log_epoch(epoch, epoch_metrics(epoch), is_best=epoch == 1)
    logger.close()
    rows = read_rows(tmp_path)
    assert rows[0] == ["epoch", *EPOCH_KEYS] and [row[0] for row in rows[1:]] == ["1", "2"]
    assert float(rows[2][EPOCH_KEYS.index("val/acc") + 1]) == pytest.approx(epoch_metrics(2)["val/acc"])
    assert {tag: [step for step, _ in values] for tag, values in tb_scalars(tmp_path).items()} == \
        dict.fromkeys(EPOCH_KEYS, [1, 2])
    printed = out.file.getvalue().splitlines()
    assert printed[0].split() == ["epoch", "lr", "train/loss", "train/acc", "val/loss", "val/acc", "img/s", "time"]
    assert printed[1].endswith("★ best") and not printed[2].endswith("★ best")


def test_a_resumed_logger_drops_the_rows_and_events_after_the_epoch_it_resumes_from(tmp_path):
    first = RunLogger(console(), RunWriters(tmp_path))
    for epoch in (1, 2, 3):
        first.log_epoch(epoch, epoch_metrics(epoch), is_best=False)
    first.close()
    resumed = RunLogger(console(), RunWriters(tmp_path, resume_epoch=1))  # last.pt was written after epoch 1
    for epoch in (2, 3):
        resumed.log_epoch(epoch, epoch_metrics(epoch + 10), is_best=False)
    resumed.close()
    assert [row[0] for row in read_rows(tmp_path)[1:]] == ["1", "2", "3"]
    assert tb_scalars(tmp_path)["lr"] == [(1, pytest.approx(1.0)), (2, pytest.approx(12.0)), (3, pytest.approx(13.0))]


HPARAMS = [HParam("optimizer.lr", 0.1, differs=True), HParam("model", "lenet5"), HParam("trainer.amp", False)]


def test_the_dashboard_holds_layout_config_text_and_an_hparams_entry_naming_the_runs_own_scalars(tmp_path):
    logger = RunLogger(console(), RunWriters(tmp_path))
    logger.start_dashboard("seed: 0\nmodel:\n  name: lenet5\n", ["optimizer.lr=0.1"], HPARAMS)
    running = hparams_of(tmp_path)
    logger.log_epoch(1, epoch_metrics(1), is_best=True)
    logger.log_test({"test/loss": 0.3, "test/acc": 0.9}, step=1)
    logger.end_dashboard({"status": "completed", "test/acc": 0.9, "test/per_class_acc": {"a/b": 0.5}}, "completed", 1)
    logger.close()
    assert running.status is None  # no ending yet: TensorBoard shows it as running
    entry = hparams_of(tmp_path)
    assert entry.values == {"optimizer.lr": 0.1, "model": "lenet5", "trainer.amp": False}
    assert set(tb_scalars(tmp_path)) == {*EPOCH_KEYS, "test/loss", "test/acc"}
    assert entry.status == api_pb2.STATUS_SUCCESS
    events = tb_events(tmp_path)
    texts = {tag: events.Tensors(tag)[-1].tensor_proto.string_val[0].decode() for tag in events.Tags()["tensors"]
             if tag.endswith("/text_summary")}
    assert "    model:" in texts["config/text_summary"] and "optimizer.lr=0.1" in texts["overrides/text_summary"]
    summary = texts["summary/text_summary"]
    assert "| test/acc | 0.9000 |" in summary and "| a/b | 0.5000 |" in summary
    layout = layout_pb2.Layout.FromString(events.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = {chart.title: list(chart.multiline.tag) for chart in layout.category[0].chart}
    assert charts["loss"] == ["^train/loss$", "^val/loss$"] and "^val/acc$" in charts["accuracy"]


def test_a_resumed_run_that_completes_shows_success_whatever_its_first_session_ended_with(tmp_path):
    first = RunLogger(console(), RunWriters(tmp_path))
    first.start_dashboard("", [], HPARAMS)
    first.end_dashboard({"status": "failed"}, "failed", 1)
    first.close()
    assert hparams_of(tmp_path).status == api_pb2.STATUS_FAILURE
    resumed = RunLogger(console(), RunWriters(tmp_path, resume_epoch=1))
    resumed.start_dashboard("", [], HPARAMS, step=1)
    resumed.end_dashboard({"status": "completed"}, "completed", 2)
    resumed.close()
    assert hparams_of(tmp_path).status == api_pb2.STATUS_SUCCESS
    assert [p.name for p in tmp_path.glob("*hparams*")] == [HPARAMS_FILE]  # one entry, rewritten whole


def test_runs_written_with_a_tensorboard_folder_keep_writing_there(tmp_path):
    (tmp_path / "tensorboard").mkdir()
    logger = RunLogger(console(), RunWriters(tmp_path, resume_epoch=0))
    logger.log_epoch(1, epoch_metrics(1), is_best=True)
    logger.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*")) and not list(tmp_path.glob("events.*"))
    assert events_dir(tmp_path) == tmp_path / "tensorboard"


def test_the_model_graph_is_traced_in_eval_mode_without_warnings_on_the_console(tmp_path, capsys):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    logger = RunLogger(console(), RunWriters(tmp_path))
    logger.log_graph(model, torch.zeros(1, 1, 2, 2))  # one image: BatchNorm1d would refuse it in training mode
    logger.close()
    assert model.training  # put back as it was
    assert "Linear" in str(tb_events(tmp_path).Graph())
    assert capsys.readouterr().err == ""


def test_per_class_accuracy_is_each_rows_diagonal_share_and_none_for_an_empty_class():
    confusion = torch.tensor([[3, 1, 0], [0, 0, 0], [1, 1, 2]])
    assert per_class_accuracy(confusion, ["a", "b", "c"]) == {"a": 0.75, "b": None, "c": 0.5}



@pytest.mark.parametrize("classes", [3, 10, 100])
def test_the_confusion_image_shades_each_cell_by_its_share_of_the_row(classes):
    confusion = torch.eye(classes, dtype=torch.int64) * 9
    confusion[0, 1] = 3  # row 0: 9 of 12 right
    image = confusion_image(confusion, [f"class {i}" for i in range(classes)], title="run\ntest/acc 0.9")
    assert image.dtype.name == "uint8" and image.ndim == 3 and image.shape[2] == 3
    assert 200 <= image.shape[1] <= 560  # small, with large text: TensorBoard shows it about 230 pixels wide
    def shade(share: float) -> np.ndarray:
        return (LIGHT + (DARK - LIGHT) * share).astype(np.uint8)

    def pixels_of(colour, rows=slice(None)) -> int:
        return int(np.all(image[rows] == colour, axis=-1).sum())

    assert pixels_of(shade(1.0), rows=slice(-14, -10)) > 0  # the last row's diagonal cell: its whole row
    assert pixels_of(shade(0.75)) > 0 and pixels_of(shade(0.25)) > 0  # row 0: 9 of 12 right, 3 of 12 wrong
    assert pixels_of(shade(1.0), rows=slice(0, 12)) == 0  # the title stays above the cells


def test_a_logger_without_writers_only_speaks_to_its_console(tmp_path):
    out = console()
    logger = RunLogger(out)  # the other ranks of a data-parallel run; a run before it owns its directory
    logger.log_epoch(1, epoch_metrics(1), is_best=True)
    logger.log_scalars({"test/acc": 0.5}, step=1)
    logger.note("early stopping: ...")
    logger.close()
    assert list(tmp_path.iterdir()) == []
    assert "early stopping" in out.file.getvalue() and "★ best" in out.file.getvalue()
