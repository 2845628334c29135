"""Training and evaluation passes: plain functions that return metric dicts.

Loss sums and correct counts accumulate on the device and are read once per pass, so the hot loop
never waits on the host (no `.item()` per step).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from . import distributed
from .errors import CnnbenchError


@dataclass
class TrainSetup:
    """What a training step needs besides the data."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    scheduler: object = None  # an LRScheduler stepped once per optimizer step
    grad_clip: float | None = None
    amp: bool = False  # bf16 autocast for forward passes (trainer.amp)

    @property
    def module(self) -> nn.Module:
        """The model itself, unwrapped from torch.compile and DistributedDataParallel: what checkpoints hold."""
        model = getattr(self.model, "_orig_mod", self.model)
        return getattr(model, "module", model)

    def autocast(self):
        device_type = next(self.model.parameters()).device.type
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.amp)


@dataclass
class EpochCursor:
    """Where an interrupted epoch stopped: enough to finish it exactly as if it had not been stopped."""

    order: torch.Tensor | None  # the epoch's permutation of the training set
    steps_done: int = 0
    loss_sum: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    seen: int = 0
    seconds: float = 0.0
    lr: float | None = None  # the learning rate at the start of the epoch, as logged

    def state_dict(self) -> dict:
        return dict(self.__dict__)


class StopFlag:
    """Set by a signal handler; the training loop stops after the step it is in."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


class Diverged(CnnbenchError):
    """The loss became NaN or infinite at `step` (of `epoch`, once the epoch loop knows it)."""

    def __init__(self, step: int, last_finite: float, epoch: int | None = None):
        self.step, self.last_finite, self.epoch = step, last_finite, epoch
        where = f"epoch {epoch}, step {step}" if epoch else f"step {step}"
        super().__init__(f"training diverged at {where}: the loss is NaN or infinite (last finite loss "
                         f"{last_finite:.4g}); best.pt and last.pt keep the last good epoch. "
                         "Try a lower optimizer.lr, a warmup (scheduler.warmup_epochs) or trainer.grad_clip")


def train_one_epoch(setup: TrainSetup, loader, max_steps: int | None = None, cursor: EpochCursor | None = None,
                    stop: StopFlag | None = None, on_step: Callable[[int], None] | None = None,
                    check_every: int = 10) -> dict:
    """One pass over `loader` (its first `max_steps` batches), or the rest of one after `cursor`.

    Returns the epoch's metrics; with `stop` requested mid-way, `"cursor"` holds where it stopped. A
    non-finite loss raises Diverged, checked every `check_every` steps (one host sync each time). In a
    data-parallel run the metrics are summed over all ranks, and all ranks stop at the same step.
    """
    model, device = setup.model, loader.device
    model.train()
    cursor = cursor or EpochCursor(order=loader.draw_order())
    loss_sum = cursor.loss_sum.to(device) if cursor.loss_sum is not None else torch.zeros((), device=device)
    correct = cursor.correct.to(device) if cursor.correct is not None else torch.zeros((), device=device,
                                                                                        dtype=torch.int64)
    watch = DivergenceWatch(device)
    seen, step, start = cursor.seen, cursor.steps_done, time.perf_counter()
    total = min(len(loader), max_steps or len(loader))
    first_step_s = None
    for images, labels in loader.batches(cursor.order, start_step=cursor.steps_done):
        step += 1
        logits, loss = training_step(setup, images, labels)
        if first_step_s is None:  # one host sync per epoch: includes torch.compile's compilation in epoch 1
            float(loss.detach())
            first_step_s = time.perf_counter() - start
        watch.record(loss, step)
        loss_sum += loss.detach() * len(labels)
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += len(labels)
        if on_step is not None:
            on_step(step)
        at_check = step % check_every == 0 or step >= total
        if at_check:
            watch.check()
        if step >= total:
            break
        if stop is not None and stop_now(stop, at_check, device):
            watch.check()  # never save a diverged state as a resumable one
            seconds = cursor.seconds + time.perf_counter() - start
            loss_total, correct_total, new_seen = summed_over_ranks(loss_sum, correct, seen - cursor.seen)
            return {"cursor": EpochCursor(cursor.order, step, torch.tensor(loss_total, dtype=loss_sum.dtype),
                                          torch.tensor(int(correct_total)), cursor.seen + new_seen, seconds)}
    watch.check()
    loss_total, correct_total, new_seen = summed_over_ranks(loss_sum, correct, seen - cursor.seen)
    seen_total = cursor.seen + new_seen
    return {
        "train/loss": loss_total / seen_total,  # the sums are read once, here
        "train/acc": correct_total / seen_total,
        "train/examples": new_seen,
        "train/seconds": time.perf_counter() - start,
        "train/first_step_s": first_step_s,
    }


def summed_over_ranks(loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> tuple[float, int, int]:
    """(loss sum, correct, images) read from the device, summed over all ranks in a data-parallel run."""
    if not distributed.is_active():
        return loss_sum.item(), int(correct.item()), seen
    totals = torch.stack([loss_sum.double(), correct.double(),  # float64: exact counts up to 2**53
                          torch.tensor(float(seen), device=loss_sum.device, dtype=torch.float64)])
    distributed.all_reduce_sum(totals)
    loss_total, correct_total, seen_total = totals.tolist()
    return loss_total, int(correct_total), int(seen_total)


def stop_now(stop: StopFlag, at_check: bool, device: torch.device) -> bool:
    """Whether to stop after this step: at once in one process; ranks agree at the next check step."""
    if not distributed.is_active():
        return stop.requested
    if not at_check:
        return False
    signum = distributed.agreed_max(distributed.signal_number(stop.signal_name), device)
    if signum:
        stop.signal_name = signal.Signals(signum).name
    return bool(signum)


def training_step(setup: TrainSetup, images: torch.Tensor, labels: torch.Tensor):
    with setup.autocast():
        logits = setup.model(images)
        loss = setup.loss_fn(logits, labels)
    setup.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if setup.grad_clip:
        nn.utils.clip_grad_norm_(setup.model.parameters(), max_norm=setup.grad_clip)
    setup.optimizer.step()
    if setup.scheduler is not None:
        setup.scheduler.step()
    return logits, loss


class DivergenceWatch:
    """Remembers, on the device, the first step with a non-finite loss and the last finite loss before it."""

    def __init__(self, device: torch.device):
        self.first_bad_step = torch.full((), -1, device=device, dtype=torch.int64)
        self.last_finite = torch.full((), float("nan"), device=device)

    def record(self, loss: torch.Tensor, step: int) -> None:
        loss = loss.detach()
        still_good = self.first_bad_step < 0
        finite = torch.isfinite(loss)
        self.first_bad_step = torch.where(still_good & ~finite, step, self.first_bad_step)
        self.last_finite = torch.where(still_good & finite, loss.float(), self.last_finite)

    def check(self) -> None:
        bad_step = distributed.agreed_max(int(self.first_bad_step.item()), self.first_bad_step.device)
        if bad_step >= 0:
            raise Diverged(bad_step, float(self.last_finite.item()))


@torch.inference_mode()
def evaluate(model: nn.Module, loader, loss_fn: nn.Module, prefix: str = "val") -> dict[str, float]:
    """Mean loss and accuracy of `model` on every batch of `loader`, under `prefix/`."""
    loss, acc, _ = _evaluate(model, loader, loss_fn, num_classes=None)
    return {f"{prefix}/loss": loss, f"{prefix}/acc": acc}


@torch.inference_mode()
def evaluate_with_confusion(model: nn.Module, loader, loss_fn: nn.Module, num_classes: int,
                            prefix: str = "test") -> tuple[dict[str, float], torch.Tensor]:
    """`evaluate` plus the confusion matrix (rows: true class, columns: predicted), on the CPU."""
    loss, acc, confusion = _evaluate(model, loader, loss_fn, num_classes)
    return {f"{prefix}/loss": loss, f"{prefix}/acc": acc}, confusion.cpu()


def _evaluate(model: nn.Module, loader, loss_fn: nn.Module, num_classes: int | None):
    model.eval()
    device = loader.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    confusion = torch.zeros(num_classes or 1, num_classes or 1, device=device, dtype=torch.int64)
    seen = 0
    for images, labels in loader:
        logits = model(images)
        predicted = logits.argmax(1)
        loss_sum += loss_fn(logits, labels) * len(labels)
        correct += (predicted == labels).sum()
        if num_classes:
            confusion += torch.bincount(labels * num_classes + predicted,
                                        minlength=num_classes * num_classes).view(num_classes, num_classes)
        seen += len(labels)
    distributed.all_reduce_sum(confusion)
    loss_total, correct_total, seen_total = summed_over_ranks(loss_sum, correct, seen)
    return loss_total / seen_total, correct_total / seen_total, confusion


class EarlyStopping:
    """Stop after `patience` epochs without a strictly better monitored value (higher is better)."""

    def __init__(self, patience: int | None):
        self.patience = patience or 0
        self.best = float("-inf")
        self.best_epoch = 0
        self.bad_epochs = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record this epoch's value; True when it is a new best."""
        if value > self.best:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}


    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]
