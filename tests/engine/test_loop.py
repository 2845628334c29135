"""One training pass and one evaluation pass (cnnbench.engine.loop), on an in-memory loader."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cnnbench.engine import loop
from cnnbench.errors import Diverged
from cnnbench.runtime.signals import StopFlag
from tests.engine.conftest import loader, setup


def test_a_pass_takes_every_batch_once_and_reports_the_mean_loss_and_accuracy(problem, monkeypatch):
    train_setup, train, _ = problem
    seen_losses, seen = [], []
    real_step = loop.training_step

    def recording_step(s, images, labels):
        logits, loss = real_step(s, images, labels)
        seen_losses.append(float(loss.detach()) * len(labels))
        seen.append((len(labels), int((logits.argmax(1) == labels).sum())))
        return logits, loss

    monkeypatch.setattr(loop, "training_step", recording_step)
    metrics = loop.train_one_epoch(train_setup, train)
    assert len(seen) == 5 and metrics.examples == 40 == sum(n for n, _ in seen)
    assert metrics.loss == pytest.approx(sum(seen_losses) / 40, rel=1e-6)
    assert metrics.acc == sum(c for _, c in seen) / 40
    assert train_setup.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.9 ** 5)  # one scheduler step a step


def test_max_steps_ends_the_pass_early():
    metrics = loop.train_one_epoch(setup(), loader(), max_steps=2)
    assert metrics.examples == 16


def test_a_stopped_pass_finished_from_its_cursor_equals_an_uninterrupted_pass():
    whole_setup = setup()
    whole = loop.train_one_epoch(whole_setup, loader())

    stop = StopFlag()
    parted_setup, train = setup(), loader()
    calls = {"n": 0}

    def after_step(step: int) -> None:
        calls["n"] += 1
        if step == 3:
            stop.signal_name = "SIGINT"

    first = loop.train_one_epoch(parted_setup, train, stop=stop, on_step=after_step)
    cursor = first.stopped_at
    assert cursor.steps_done == 3 and cursor.seen == 24 and calls["n"] == 3
    rest = loop.train_one_epoch(parted_setup, train, cursor=cursor)
    assert rest.loss == pytest.approx(whole.loss, rel=1e-6)
    assert rest.acc == whole.acc
    for a, b in zip(whole_setup.model.parameters(), parted_setup.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_non_finite_loss_raises_diverged_at_its_step_with_the_last_finite_loss():
    class NaNFromThirdCall(nn.CrossEntropyLoss):
        calls, finite = 0, []

        def forward(self, logits, labels):
            NaNFromThirdCall.calls += 1
            loss = super().forward(logits, labels)
            if NaNFromThirdCall.calls >= 3:
                return loss * float("nan")
            NaNFromThirdCall.finite.append(float(loss.detach()))
            return loss

    train_setup = setup()
    train_setup.loss_fn = NaNFromThirdCall()
    with pytest.raises(Diverged) as diverged:
        loop.train_one_epoch(train_setup, loader(), check_every=10)
    assert diverged.value.step == 3 and diverged.value.last_finite == pytest.approx(NaNFromThirdCall.finite[-1])
    assert "step 3" in str(diverged.value) and "optimizer.lr" in str(diverged.value)


def test_evaluate_is_the_mean_over_every_image_and_the_confusion_counts_them():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    val = loader(23, batch_size=5, shuffle=False, seed=2)
    metrics, confusion = loop.evaluate_with_confusion(model, val, nn.CrossEntropyLoss(), num_classes=3, prefix="val")
    with torch.no_grad():
        logits = model(val.transform(val.images))
    assert metrics["val/loss"] == pytest.approx(nn.functional.cross_entropy(logits, val.labels).item(), rel=1e-5)
    assert metrics["val/acc"] == pytest.approx(int((logits.argmax(1) == val.labels).sum()) / 23)
    assert int(confusion.sum()) == 23 and confusion.trace() == (logits.argmax(1) == val.labels).sum()
    assert loop.evaluate(model, val, nn.CrossEntropyLoss(), prefix="test") == {
        "test/loss": metrics["val/loss"], "test/acc": metrics["val/acc"]}
