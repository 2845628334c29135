"""The epoch loop (cnnbench.engine.fit): early stopping, best.pt on every new best, last.pt every epoch, a stop
that saves where it was, and the final test on best.pt. A recording logger stands in for the real output."""

from __future__ import annotations

import pytest
import torch
from rich.console import Console

from cnnbench.data import DataBundle
from cnnbench.engine import loop
from cnnbench.engine.checkpoint import load_checkpoint, restore
from cnnbench.engine.fit import FitSettings, final_test, fit
from cnnbench.engine.state import EarlyStopping
from cnnbench.errors import Interrupted
from cnnbench.runtime.signals import StopFlag
from tests.engine.conftest import loader, setup


class RecordingLogger:
    def __init__(self):
        self.console = Console(quiet=True)
        self.epochs, self.tests, self.figures, self.notes, self.per_class_tables = [], [], [], [], []

    def log_epoch(self, epoch, metrics, is_best):
        self.epochs.append((epoch, metrics, is_best))

    def log_test(self, metrics, step):
        self.tests.append((step, metrics))

    log_scalars = log_test

    def log_image(self, tag, image, step):
        self.figures.append(tag)

    def note(self, text):
        self.notes.append(text)

    def per_class(self, per_class, confusion, title):
        self.per_class_tables.append(per_class)


def bundle() -> DataBundle:
    val = loader(24, batch_size=10, shuffle=False, seed=1)
    return DataBundle(train=loader(), val=val, test=val, classes=["a", "b", "c"], input_shape=(1, 4, 4),
                      val_is_test=True)


def settings(tmp_path, **overrides) -> FitSettings:
    return FitSettings(**{"epochs": 6, "checkpoints": tmp_path / "checkpoints", "config": {"model": {"name": "x"}},
                          **overrides})


@pytest.fixture
def scripted_val_acc(monkeypatch):
    """Validation accuracy per epoch as given, the real loss beside it."""

    def script(*values: float) -> None:
        scripted = iter(values)
        real = loop.evaluate

        def evaluate(model, data, loss_fn, prefix="val", **kwargs):
            return {**real(model, data, loss_fn, prefix, **kwargs), f"{prefix}/acc": next(scripted)}

        monkeypatch.setattr(loop, "evaluate", evaluate)

    return script


def test_early_stopping_counts_epochs_without_a_strictly_better_value():
    stopper = EarlyStopping(2)
    assert [stopper.update(v, e) for e, v in enumerate([0.5, 0.7, 0.7, 0.6], start=1)] == [True, True, False, False]
    assert stopper.should_stop and stopper.best == 0.7 and stopper.best_epoch == 2
    assert not EarlyStopping(0).should_stop and not EarlyStopping(None).should_stop


def test_fit_stops_after_patience_and_keeps_the_best_epoch_in_best_pt(tmp_path, scripted_val_acc):
    scripted_val_acc(0.5, 0.9, 0.7, 0.6, 0.95, 0.99)
    logger = RecordingLogger()
    result = fit(setup(), bundle(), settings(tmp_path, patience=2), logger)
    assert result["epochs_run"] == 4 and result["stopped_early"] and result["best_epoch"] == 2
    assert result["val/acc_best"] == 0.9
    assert [(epoch, best) for epoch, _, best in logger.epochs] == [(1, True), (2, True), (3, False), (4, False)]
    assert [metrics["val/acc_best"] for _, metrics, _ in logger.epochs] == [0.5, 0.9, 0.9, 0.9]
    assert logger.notes == ["early stopping: no better val/acc for 2 epochs; best epoch 2 (val/acc 0.9000)"]
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["epoch"] == 2
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["epoch"] == 4 and last["early_stopping"] == {"best": 0.9, "best_epoch": 2, "bad_epochs": 2}


def test_every_epoch_row_has_the_whole_vocabulary(tmp_path):
    from cnnbench.engine.metrics import EPOCH_KEYS

    logger = RecordingLogger()
    fit(setup(), bundle(), settings(tmp_path, epochs=2), logger)
    assert all(set(EPOCH_KEYS) <= set(metrics) for _, metrics, _ in logger.epochs)


def test_a_stop_raises_interrupted_after_saving_last_pt_and_a_restore_finishes_the_same(tmp_path, monkeypatch):
    reference = fit(setup(), bundle(), settings(tmp_path / "whole", epochs=3), RecordingLogger())

    stop, calls = StopFlag(), {"n": 0}
    real_step = loop.training_step

    def step_then_stop(*args):
        calls["n"] += 1
        if calls["n"] == 7:  # epoch 2, step 2
            stop.signal_name = "SIGTERM"
        return real_step(*args)

    monkeypatch.setattr(loop, "training_step", step_then_stop)
    with pytest.raises(Interrupted) as stopped:
        fit(setup(), bundle(), settings(tmp_path / "parted", epochs=3), RecordingLogger(), stop=stop)
    monkeypatch.setattr(loop, "training_step", real_step)
    assert stopped.value.exit_code == 143 and "epoch 2 after step 2" in str(stopped.value)
    resumed_setup, data = setup(seed=5), bundle()  # other initial weights: the checkpoint must replace them
    state = restore(tmp_path / "parted" / "checkpoints" / "last.pt", resumed_setup, data.train, None, "x")
    assert state.epoch == 1 and state.cursor.steps_done == 2
    resumed = fit(resumed_setup, data, settings(tmp_path / "parted", epochs=3), RecordingLogger(), state)
    assert {k: v for k, v in resumed.items() if k.startswith("val/")} == \
        {k: v for k, v in reference.items() if k.startswith("val/")}


def test_final_test_evaluates_best_pt_not_the_last_weights(tmp_path, scripted_val_acc):
    scripted_val_acc(0.9, 0.1, 0.1)
    train_setup, data, logger = setup(), bundle(), RecordingLogger()
    fit(train_setup, data, settings(tmp_path, epochs=3), logger)
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == 1
    test = final_test(train_setup, data, tmp_path / "checkpoints", logger, step=3)
    assert all(torch.equal(v, best["model"][k]) for k, v in train_setup.module.state_dict().items())
    assert set(test) == {"test/loss", "test/acc", "test/per_class_acc"}
    assert list(test["test/per_class_acc"]) == list("abc")
    assert logger.tests[0][0] == 3 and logger.figures == ["test/confusion_matrix"]
