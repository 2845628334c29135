"""Training and evaluation passes: plain functions that return metric dicts.

Loss sums and correct counts accumulate on the device and are read once per pass, so the hot loop
never waits on the host (no `.item()` per step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from .checkpoint import save_checkpoint
from .logger import EpochProgress


def train_one_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                    scheduler=None, grad_clip: float | None = None, max_steps: int | None = None,
                    on_step: Callable[[int], None] | None = None) -> dict[str, float]:
    """One pass over `loader` (or its first `max_steps` batches); the scheduler steps per batch."""
    model.train()
    device = loader.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    start = time.perf_counter()
    for step, (images, labels) in enumerate(loader, start=1):
        logits = model(images)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.detach() * len(labels)
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += len(labels)
        if on_step is not None:
            on_step(step)
        if max_steps is not None and step >= max_steps:
            break
    train_loss = loss_sum.item() / seen  # the one host sync of the epoch
    seconds = time.perf_counter() - start
    return {
        "train/loss": train_loss,
        "train/acc": correct.item() / seen,
        "train/examples": seen,
        "train/seconds": seconds,
    }


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
    return loss_sum.item() / seen, correct.item() / seen, confusion


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


def fit(model: nn.Module, data, optimizer: torch.optim.Optimizer, scheduler, loss_fn: nn.Module,
        cfg: DictConfig, logger) -> dict:
    """Train for `cfg.trainer.epochs` with validation, early stopping and checkpoints in the run dir.

    `checkpoints/best.pt` is written whenever val/acc improves, `checkpoints/last.pt` every epoch.
    """
    trainer = cfg.trainer
    checkpoints = Path(cfg.output_dir) / "checkpoints"
    stopper = EarlyStopping(trainer.patience)
    progress = EpochProgress(logger.console, every=trainer.progress_every)
    steps_per_epoch = min(len(data.train), trainer.max_steps_per_epoch or len(data.train))
    config = OmegaConf.to_container(cfg, resolve=True)
    train_examples, train_seconds = [], []
    epoch = 0
    for epoch in range(1, trainer.epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        progress.start(f"epoch {epoch}/{trainer.epochs}", steps_per_epoch)
        try:
            train = train_one_epoch(model, data.train, optimizer, loss_fn, scheduler, trainer.grad_clip,
                                    steps_per_epoch, on_step=progress.step)
        finally:
            progress.stop()
        val = evaluate(model, data.val, loss_fn, prefix="val")
        improved = stopper.update(val["val/acc"], epoch)
        train_examples.append(train["train/examples"])
        train_seconds.append(train["train/seconds"])
        metrics = {
            "lr": lr, "train/loss": train["train/loss"], "train/acc": train["train/acc"], **val,
            "val/acc_best": stopper.best,
            "throughput/train_examples_per_s": train["train/examples"] / train["train/seconds"],
            "time/epoch_s": time.perf_counter() - started,
        }
        state = dict(epoch=epoch, model=model.state_dict(), metrics=metrics, early_stopping=stopper.state_dict(),
                     config=config)
        if improved:
            save_checkpoint(checkpoints / "best.pt", **state)
        save_checkpoint(checkpoints / "last.pt", **state, optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), rng=_rng_state(data.train.generator))
        logger.log_epoch(epoch, metrics, improved)
        if stopper.should_stop:
            break
    # Throughput leaves out the first epoch (warm-up, allocator growth) whenever there is another.
    timed = slice(1, None) if epoch > 1 else slice(None)
    return {
        "epochs_run": epoch,
        "best_epoch": stopper.best_epoch,
        "best_val_acc": stopper.best,
        "stopped_early": epoch < trainer.epochs,
        "train_examples_per_s": sum(train_examples[timed]) / sum(train_seconds[timed]),
    }


def _rng_state(generator: torch.Generator | None) -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["data"] = generator.get_state()
    return state
