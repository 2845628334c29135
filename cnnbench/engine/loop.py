"""Training and evaluation passes: plain functions; a training pass returns an `EpochResult`, an evaluation pass
its metrics under the shared names of `metrics.py`.

Loss sums and correct counts accumulate on the device and are read once per pass, so the hot loop
never waits on the host (no `.item()` per step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import Diverged
from ..runtime import distributed
from ..runtime.signals import StopFlag, signal_name, signal_number
from . import metrics as m
from .setup import TrainSetup


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


@dataclass(frozen=True)
class EpochResult:
    """What a training pass did: its loss and accuracy over the images it saw, how many and how long; `stopped_at`
    holds where a pass stopped by a signal ended (the epoch is not finished), else None."""

    loss: float = float("nan")
    acc: float = float("nan")
    examples: int = 0  # images this pass trained on (a resumed epoch: since it resumed)
    seconds: float = 0.0
    first_step_s: float | None = None
    stopped_at: EpochCursor | None = None

    def metrics(self) -> dict[str, float]:
        return {m.TRAIN_LOSS: self.loss, m.TRAIN_ACC: self.acc}


def train_one_epoch(setup: TrainSetup, loader, max_steps: int | None = None, cursor: EpochCursor | None = None,
                    stop: StopFlag | None = None, on_step: Callable[[int], None] | None = None,
                    check_every: int = 10) -> dict:
    """One pass over `loader` (its first `max_steps` batches), or the rest of one after `cursor`.

    Returns the epoch's EpochResult; with `stop` requested mid-way, its `stopped_at` holds where it stopped. A
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
        if setup.mix is not None:  # mixup / cutmix: soft targets; accuracy counts the larger share's class
            images, targets = setup.mix(images, labels)
            labels = targets.argmax(1)
        else:
            targets = labels
        logits, loss = training_step(setup, images, targets)
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
            stopped_at = EpochCursor(cursor.order, step, torch.tensor(loss_total, dtype=loss_sum.dtype),
                                     torch.tensor(int(correct_total)), cursor.seen + new_seen, seconds)
            return EpochResult(stopped_at=stopped_at)
    watch.check()
    loss_total, correct_total, new_seen = summed_over_ranks(loss_sum, correct, seen - cursor.seen)
    seen_total = cursor.seen + new_seen
    return EpochResult(loss=loss_total / seen_total, acc=correct_total / seen_total,  # the sums are read once, here
                       examples=new_seen, seconds=time.perf_counter() - start, first_step_s=first_step_s)


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
    signum = distributed.agreed_max(signal_number(stop.signal_name), device)
    if signum:
        stop.signal_name = signal_name(signum)
    return bool(signum)


def training_step(setup: TrainSetup, images: torch.Tensor, labels: torch.Tensor):
    setup.optimizer.zero_grad(set_to_none=True)  # before the forward: CUDA graphs replay into fresh gradients
    if setup.cudagraphs:
        torch.compiler.cudagraph_mark_step_begin()
    with setup.autocast():
        logits = setup.model(images)
        loss = setup.loss_fn(logits, labels)
    loss.backward()
    if setup.grad_clip:
        nn.utils.clip_grad_norm_(setup.model.parameters(), max_norm=setup.grad_clip)
    setup.optimizer.step()
    if setup.scheduler is not None:
        setup.scheduler.step()
    if setup.ema is not None:
        setup.ema.update_parameters(setup.module)
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
def evaluate(model: nn.Module, loader, loss_fn: nn.Module, prefix: str = "val", tta: str = "none") -> dict[str, float]:
    """Mean loss and accuracy of `model` on every batch of `loader`, under `prefix/`."""
    loss, acc, _ = _evaluate(model, loader, loss_fn, num_classes=None, tta=tta)
    return {f"{prefix}/loss": loss, f"{prefix}/acc": acc}


@torch.inference_mode()
def evaluate_with_confusion(model: nn.Module, loader, loss_fn: nn.Module, num_classes: int,
                            prefix: str = "test", tta: str = "none") -> tuple[dict[str, float], torch.Tensor]:
    """`evaluate` plus the confusion matrix (rows: true class, columns: predicted), on the CPU."""
    loss, acc, confusion = _evaluate(model, loader, loss_fn, num_classes, tta)
    return {f"{prefix}/loss": loss, f"{prefix}/acc": acc}, confusion.cpu()


def predict(model: nn.Module, images: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """The logits of `images`; with `tta="flip"` the mean of the logits of the images and their mirror images."""
    logits = model(images)
    if tta == "flip":
        logits = (logits + model(images.flip(-1))) / 2
    return logits


def _evaluate(model: nn.Module, loader, loss_fn: nn.Module, num_classes: int | None, tta: str = "none"):
    model.eval()
    device = loader.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    confusion = torch.zeros(num_classes or 1, num_classes or 1, device=device, dtype=torch.int64)
    seen = 0
    for images, labels in loader:
        logits = predict(model, images, tta)
        predicted = logits.argmax(1)
        loss_sum += loss_fn(logits, labels) * len(labels)
        correct += (predicted == labels).sum()
        if num_classes:
            cells = labels * num_classes + predicted  # scatter_add_, unlike bincount, never waits for the GPU
            confusion.view(-1).scatter_add_(0, cells, torch.ones_like(cells))
        seen += len(labels)
    distributed.all_reduce_sum(confusion)
    loss_total, correct_total, seen_total = summed_over_ranks(loss_sum, correct, seen)
    return loss_total / seen_total, correct_total / seen_total, confusion
