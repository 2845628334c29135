"""The epoch loop: validation, early stopping, checkpoints, and picking up again from `last.pt`.

`last.pt` carries everything that changes while training (weights, optimizer, scheduler, early-stopping
counter, RNG states, the partly done epoch), so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from . import distributed, engine
from .checkpoint import load_checkpoint, save_checkpoint
from .engine import Diverged, EarlyStopping, EpochCursor, StopFlag, TrainSetup
from .errors import CnnbenchError
from .logger import EpochProgress

log = logging.getLogger(__name__)


class Interrupted(CnnbenchError):
    """SIGINT or SIGTERM stopped training after a step; last.pt holds the state to resume from."""

    def __init__(self, signal_name: str, epoch: int, step: int, checkpoint: Path):
        self.exit_code = 128 + int(getattr(signal, signal_name, signal.SIGINT))  # 130 for SIGINT, 143 for SIGTERM
        super().__init__(f"{signal_name}: stopped in epoch {epoch} after step {step}; the state is in {checkpoint}. "
                         f"Continue with trainer.resume={checkpoint.parent.parent}")


@dataclass
class FitState:
    epoch: int = 0  # epochs completed
    stopper: EarlyStopping = field(default_factory=lambda: EarlyStopping(0))
    cursor: EpochCursor | None = None  # a partly done epoch
    train_examples: list[int] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    first_step_s: float | None = None  # the run's first training step (with torch.compile: the compilation)


def fit(setup: TrainSetup, data, cfg: DictConfig, logger, state: FitState | None = None,
        stop: StopFlag | None = None) -> dict:
    """Train until `cfg.trainer.epochs` or early stopping; `checkpoints/best.pt` on every new best val/acc."""
    trainer = cfg.trainer
    state = state or FitState(stopper=EarlyStopping(trainer.patience))
    checkpoints = Path(cfg.output_dir) / "checkpoints"
    progress = EpochProgress(logger.console, every=trainer.progress_every)
    steps_per_epoch = min(len(data.train), trainer.max_steps_per_epoch or len(data.train))
    config = OmegaConf.to_container(cfg, resolve=True)
    for epoch in range(state.epoch + 1, trainer.epochs + 1):
        if state.stopper.should_stop:
            break
        started = time.perf_counter()
        lr = state.cursor.lr if state.cursor else setup.optimizer.param_groups[0]["lr"]
        progress.start(f"epoch {epoch}/{trainer.epochs}", steps_per_epoch)
        try:
            train = engine.train_one_epoch(setup, data.train, steps_per_epoch, cursor=state.cursor, stop=stop,
                                           on_step=progress.step, check_every=trainer.progress_every)
        except Diverged as err:
            raise Diverged(err.step, err.last_finite, epoch) from err
        finally:
            progress.stop()
        if "cursor" in train:  # stopped by a signal in the middle of the epoch
            state.cursor = train["cursor"]
            state.cursor.lr = lr
            save_last(checkpoints / "last.pt", setup, data, state, config)
            raise Interrupted(stop.signal_name, epoch, state.cursor.steps_done, checkpoints / "last.pt")
        state.cursor = None
        with setup.autocast():
            val = engine.evaluate(setup.module, data.val, setup.loss_fn, prefix="val")
        improved = state.stopper.update(val["val/acc"], epoch)
        if state.first_step_s is None:
            state.first_step_s = train["train/first_step_s"]
        state.train_examples.append(train["train/examples"])
        state.train_seconds.append(train["train/seconds"])
        metrics = {
            "lr": lr, "train/loss": train["train/loss"], "train/acc": train["train/acc"], **val,
            "val/acc_best": state.stopper.best,
            "throughput/train_examples_per_s": train["train/examples"] / train["train/seconds"],
            "time/epoch_s": time.perf_counter() - started,
        }
        logger.log_epoch(epoch, metrics, improved)
        if improved and distributed.is_main():
            save_checkpoint(checkpoints / "best.pt", epoch=epoch, model=setup.module.state_dict(), metrics=metrics,
                            config=config)
        state.epoch = epoch
        save_last(checkpoints / "last.pt", setup, data, state, config)
        if stop is not None and engine.stop_now(stop, at_check=True, device=data.train.device):
            raise Interrupted(stop.signal_name, epoch, steps_per_epoch, checkpoints / "last.pt")
    return summarize(state, trainer.epochs)


def summarize(state: FitState, epochs: int) -> dict:
    # Throughput leaves out the first epoch (warm-up, allocator growth) whenever there is another.
    timed = slice(1, None) if len(state.train_examples) > 1 else slice(None)
    seconds = sum(state.train_seconds[timed])
    return {
        "epochs_run": state.epoch,
        "best_epoch": state.stopper.best_epoch,
        "best_val_acc": state.stopper.best,
        "stopped_early": state.epoch < epochs,
        "train_examples_per_s": sum(state.train_examples[timed]) / seconds if seconds else 0.0,
        "first_step_s": state.first_step_s,
    }


def save_last(path: Path, setup: TrainSetup, data, state: FitState, config: dict) -> None:
    """Rank 0 writes last.pt; in a data-parallel run it holds every rank's random state (gathered here)."""
    rng_by_rank = distributed.gather_to_all(rng_state(data.train))
    if not distributed.is_main():
        return
    save_checkpoint(
        path, epoch=state.epoch, model=setup.module.state_dict(), optimizer=setup.optimizer.state_dict(),
        scheduler=setup.scheduler.state_dict() if setup.scheduler is not None else None,
        early_stopping=state.stopper.state_dict(), cursor=state.cursor.state_dict() if state.cursor else None,
        history={"train_examples": state.train_examples, "train_seconds": state.train_seconds,
                 "first_step_s": state.first_step_s},
        rng={**rng_by_rank[0], "ranks": rng_by_rank} if len(rng_by_rank) > 1 else rng_by_rank[0],
        world_size=len(rng_by_rank), config=config,
    )


def rng_state(loader) -> dict:
    """The random state that shapes what comes next: torch's (dropout), CUDA's, the loader's order and augmentation."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if loader.generator is not None:
        state["data"] = loader.generator.get_state()
    if loader.augment_generator is not loader.generator:
        state["augment"] = loader.augment_generator.get_state()
    return state


def set_rng_state(state: dict, loader) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if loader.generator is not None and "data" in state:
        loader.generator.set_state(state["data"])
    if loader.augment_generator is not loader.generator and "augment" in state:
        loader.augment_generator.set_state(state["augment"])


def _rank_rng(checkpoint: dict, path: Path) -> dict:
    """This rank's saved random state; a run resumed with another number of processes goes on, not bit-exactly."""
    ranks = distributed.current()
    saved = checkpoint["rng"].get("ranks") or [checkpoint["rng"]]
    if len(saved) != ranks.world_size and ranks.is_main:
        log.warning("%s was written by %d process(es), this run has %d: training continues from it, but the "
                    "data order and augmentation differ from an uninterrupted run", path, len(saved),
                    ranks.world_size)
    return saved[ranks.rank] if ranks.rank < len(saved) else saved[0]


def restore(path: Path, setup: TrainSetup, data, cfg: DictConfig) -> FitState:
    """Load `last.pt` into the model, optimizer, scheduler and RNGs; the FitState to continue with."""
    checkpoint = load_checkpoint(path)
    saved_model = checkpoint.get("config", {}).get("model", {}).get("name")
    if saved_model != cfg.model.name:
        raise CnnbenchError(f"checkpoint {path} was written by a run of model {saved_model}; this run builds "
                            f"{cfg.model.name} (pass the same model=, or another trainer.resume)")
    try:
        setup.module.load_state_dict(checkpoint["model"])
        setup.optimizer.load_state_dict(checkpoint["optimizer"])
        if setup.scheduler is not None and checkpoint.get("scheduler") is not None:
            setup.scheduler.load_state_dict(checkpoint["scheduler"])
    except (RuntimeError, KeyError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0]
        raise CnnbenchError(f"checkpoint {path} does not fit this model/optimizer: {first_line}") from err
    set_rng_state(_rank_rng(checkpoint, path), data.train)
    stopper = EarlyStopping(cfg.trainer.patience)
    stopper.load_state_dict(checkpoint["early_stopping"])
    cursor = None
    if checkpoint.get("cursor"):
        cursor = EpochCursor(**checkpoint["cursor"])
        if cursor.order is not None:
            cursor.order = cursor.order.to(data.train.device)
        if not distributed.is_main():  # rank 0 carries the epoch's sums so far; they are summed over ranks
            cursor.loss_sum, cursor.correct = None, None
    history = checkpoint.get("history", {})
    return FitState(epoch=checkpoint["epoch"], stopper=stopper, cursor=cursor,
                    train_examples=list(history.get("train_examples", [])),
                    train_seconds=list(history.get("train_seconds", [])), first_step_s=history.get("first_step_s"))
