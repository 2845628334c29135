"""The epoch loop: validation, early stopping, checkpoints, picking up again from last.pt, and the final test."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import Diverged, Interrupted
from ..runtime import distributed
from ..runtime.signals import StopFlag
from . import loop
from . import metrics as m
from .checkpoint import load_checkpoint, save_checkpoint, save_last
from .confusion import confusion_image, per_class_accuracy
from .console import EpochProgress
from .dashboard import class_tag
from .estimate import Plan, PlanEstimate, shown_duration
from .setup import TrainSetup
from .state import EarlyStopping, FitState


@dataclass(frozen=True)
class FitSettings:
    """How long to train and where the checkpoints go (trainer.* of the config, plus the run's own facts)."""

    epochs: int
    checkpoints: Path  # <run dir>/checkpoints
    config: dict  # the resolved config as plain containers, stored in every checkpoint
    patience: int | None = None  # epochs without a better val/acc before stopping; 0 or None: never
    max_steps_per_epoch: int | None = None
    progress_every: int = 10  # progress bar refresh and divergence check, in steps
    schedule_epochs: int | None = None  # the length the lr schedule was built with (None: `epochs`)
    target_acc: float | None = None  # the val/acc whose first epoch and time are recorded (trainer.target_acc)
    stop_at_target: bool = False  # end the run there (the best checkpoint is still tested)
    started: float | None = None  # time.perf_counter() when the run started (None: when fit starts)


def steps_per_epoch(train_loader, max_steps: int | None) -> int:
    return min(len(train_loader), max_steps or len(train_loader))


def fit(setup: TrainSetup, data, settings: FitSettings, logger, state: FitState | None = None,
        stop: StopFlag | None = None, on_epoch: Callable[[int, dict], None] | None = None) -> dict:
    """Train until `settings.epochs`, early stopping or the target; `best.pt` on every new best val/acc, `last.pt`
    every epoch; `on_epoch(epoch, metrics)` once both are saved."""
    state = state or FitState(stopper=EarlyStopping(settings.patience))
    checkpoints = settings.checkpoints
    progress = EpochProgress(logger.console, every=settings.progress_every)
    steps = steps_per_epoch(data.train, settings.max_steps_per_epoch)
    clock, before = settings.started or time.perf_counter(), state.elapsed_s  # earlier sessions of a resumed run

    def save_state() -> None:
        state.elapsed_s = before + time.perf_counter() - clock
        save_last(checkpoints / "last.pt", setup, data.train, state, settings.config,
                  settings.schedule_epochs or settings.epochs)

    estimate = PlanEstimate(Plan(settings.epochs - state.epoch, steps, data.train.batch_size, data.val.num_examples,
                                 data.test.num_examples, data.train.device.type,
                                 str(settings.config.get("data", {}).get("name", ""))), say=logger.note)
    for epoch in range(state.epoch + 1, settings.epochs + 1):
        if state.stopper.should_stop or (settings.stop_at_target and state.epoch_at_target is not None):
            break
        started = time.perf_counter()
        lr = state.cursor.lr if state.cursor else setup.optimizer.param_groups[0]["lr"]
        progress.start(f"epoch {epoch}/{settings.epochs}{time_left(state, settings.epochs - epoch + 1)}", steps)

        def on_step(step: int) -> None:
            progress.step(step)
            estimate.step(step)

        try:
            train = loop.train_one_epoch(setup, data.train, steps, cursor=state.cursor, stop=stop,
                                         on_step=on_step, check_every=settings.progress_every)
        except Diverged as err:
            raise Diverged(err.step, err.last_finite, epoch) from err
        finally:
            progress.stop()
        if train.stopped_at is not None:  # stopped by a signal in the middle of the epoch
            state.cursor = train.stopped_at
            state.cursor.lr = lr
            save_state()
            raise Interrupted(stop.signal_name, epoch, state.cursor.steps_done, checkpoints / "last.pt")
        state.cursor = None
        with setup.autocast():
            val = loop.evaluate(setup.evaluated, data.val, setup.loss_fn, prefix="val", tta=setup.tta)
        improved = state.stopper.update(val[m.MONITOR], epoch)
        if state.first_step_s is None:
            state.first_step_s = train.first_step_s
        state.train_examples.append(train.examples)
        state.train_seconds.append(train.seconds)
        state.elapsed_s = before + time.perf_counter() - clock
        metrics = {
            m.LR: lr, **train.metrics(), **val,
            m.VAL_ACC_BEST: state.stopper.best,
            m.TRAIN_EXAMPLES_PER_S: train.examples / train.seconds,
            m.EPOCH_S: time.perf_counter() - started, m.ELAPSED_S: state.elapsed_s,
        }
        state.epoch_metrics.append(metrics)
        logger.log_epoch(epoch, metrics, improved)
        if settings.target_acc is not None and state.epoch_at_target is None and val[m.MONITOR] >= settings.target_acc:
            state.epoch_at_target, state.time_to_target_s = epoch, state.elapsed_s
            logger.log_scalars({m.TO_TARGET_S: state.elapsed_s}, epoch)
            logger.note(f"target {m.MONITOR} {settings.target_acc} reached at epoch {epoch}, {state.elapsed_s:.1f}s "
                        f"after the run started{'; stopping here' if settings.stop_at_target else ''}")
        if state.stopper.should_stop and epoch < settings.epochs:
            logger.note(f"early stopping: no better {m.MONITOR} for {settings.patience} epochs; best epoch "
                        f"{state.stopper.best_epoch} ({m.VAL_ACC} {state.stopper.best:.4f})")
        if improved and distributed.is_main():
            save_checkpoint(checkpoints / "best.pt", epoch=epoch, model=setup.evaluated.state_dict(), metrics=metrics,
                            config=settings.config, classes=list(data.classes))
        state.epoch = epoch
        save_state()
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if stop is not None and loop.stop_now(stop, at_check=True, device=data.train.device):
            raise Interrupted(stop.signal_name, epoch, steps, checkpoints / "last.pt")
    return summarize(state, settings.epochs)


def time_left(state: FitState, epochs_left: int) -> str:
    """`, ~3m20s left in the run` from the mean epoch time so far (early stopping may make it shorter)."""
    times = [row[m.EPOCH_S] for row in state.epoch_metrics if m.EPOCH_S in row]
    if not times:
        return ""
    return f", ~{shown_duration(sum(times) / len(times) * epochs_left)} left in the run"


def summarize(state: FitState, epochs: int) -> dict:
    """The run's training results under the shared metric names (summary.json)."""
    # Throughput leaves out the first epoch (warm-up, allocator growth) whenever there is another.
    timed = slice(1, None) if len(state.train_examples) > 1 else slice(None)
    seconds = sum(state.train_seconds[timed])
    return {
        "epochs_run": state.epoch,
        "best_epoch": state.stopper.best_epoch,
        m.VAL_ACC_BEST: state.stopper.best,
        "stopped_early": state.epoch < epochs,
        m.TRAIN_EXAMPLES_PER_S: sum(state.train_examples[timed]) / seconds if seconds else 0.0,
        m.FIRST_STEP_S: state.first_step_s,
        "epoch_at_target": state.epoch_at_target,
        m.TO_TARGET_S: state.time_to_target_s,
    }


def final_test(setup: TrainSetup, data, checkpoints: Path, logger, step: int, run_name: str = "",
               per_class_table: bool = True) -> dict:
    """Reload best.pt and evaluate it on the test set: test/loss, test/acc, test/per_class_acc (and in TensorBoard
    test/class_acc/<class>), the confusion image titled with `run_name`; the per-class table on the console when
    `per_class_table` (a sweep's jobs leave it to summary.json and TensorBoard)."""
    best = load_checkpoint(checkpoints / "best.pt", map_location=data.test.device)
    setup.evaluated.load_state_dict(best["model"])
    with setup.autocast():
        test, confusion = loop.evaluate_with_confusion(setup.evaluated, data.test, setup.loss_fn, len(data.classes),
                                                       prefix="test", tta=setup.tta)
    per_class = per_class_accuracy(confusion, data.classes)
    logger.log_test({**test, **{class_tag(name): acc for name, acc in per_class.items() if acc is not None}}, step=step)
    if distributed.is_main():
        result = f"{m.TEST_ACC} {test[m.TEST_ACC]:.4f}, best epoch {best['epoch']}, {int(confusion.sum()):,} images"
        title = f"{run_name}\n{result}" if run_name else result
        logger.log_image("test/confusion_matrix", confusion_image(confusion, data.classes, title), step)
    if per_class_table:
        logger.per_class(per_class, confusion, title="per-class test accuracy (best checkpoint)")
    return {**test, m.TEST_PER_CLASS_ACC: per_class}
