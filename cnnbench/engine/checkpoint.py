"""Checkpoints as plain dicts (loadable with weights_only=True), written atomically; last.pt saved and restored.

`last.pt` carries everything that changes while training (weights, optimizer, scheduler, early-stopping
counter, RNG states, the partly done epoch), so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import CnnbenchError
from ..runtime import distributed
from ..runtime.files import atomic_write
from .loop import EpochCursor
from .setup import TrainSetup
from .state import EarlyStopping, FitState

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def save_checkpoint(path: Path, **state: Any) -> None:
    """Save a dict of plain state (state_dicts, numbers, tensors, containers) with a format version."""
    payload = {"format_version": FORMAT_VERSION, "cnnbench_version": __version__, **state}

    def write(tmp: str) -> None:
        try:
            torch.save(payload, tmp)
        except RuntimeError as err:  # torch's writer reports a full disk as "unexpected pos ..."
            full = shutil.disk_usage(Path(tmp).parent).free < 1 << 20
            raise OSError(errno.ENOSPC if full else errno.EIO, str(err).splitlines()[0], str(path)) from err

    atomic_write(path, write)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", mmap: bool = False,
                    require: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint written by save_checkpoint; anything else, or one without the entries `require` names, is a
    one-line CnnbenchError. `mmap` maps the tensors instead of reading them (to look at the rest)."""
    path = Path(path)
    if not path.is_file():
        raise CnnbenchError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:
        raise CnnbenchError(f"checkpoint {path} cannot be read ({type(err).__name__}): truncated or not a "
                            "cnnbench checkpoint") from err
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CnnbenchError(f"checkpoint {path} is not a cnnbench checkpoint (no format_version)")
    if payload["format_version"] != FORMAT_VERSION:
        raise CnnbenchError(f"checkpoint {path} has format version {payload['format_version']}, "
                            f"this cnnbench reads version {FORMAT_VERSION}")
    missing = [key for key in require if not isinstance(payload.get(key), dict | int)]
    if missing:
        raise CnnbenchError(f"checkpoint {path} has no {' or '.join(missing)}: it was not saved by a cnnbench run "
                            "(or was cut short); use a run's own checkpoints/best.pt or last.pt")
    return payload


def save_last(path: Path, setup: TrainSetup, loader, state: FitState, config: dict, schedule_epochs: int) -> None:
    """Rank 0 writes last.pt; in a data-parallel run it holds every rank's random state (gathered here).
    `schedule_epochs`: the length the learning-rate schedule was built with (a resume may train longer)."""
    rng_by_rank = distributed.gather_to_all(rng_state(loader))
    if not distributed.is_main():
        return
    save_checkpoint(
        path, epoch=state.epoch, model=setup.module.state_dict(), optimizer=setup.optimizer.state_dict(),
        scheduler=setup.scheduler.state_dict() if setup.scheduler is not None else None,
        early_stopping=state.stopper.state_dict(), cursor=state.cursor.state_dict() if state.cursor else None,
        history={"train_examples": state.train_examples, "train_seconds": state.train_seconds,
                 "first_step_s": state.first_step_s, "epoch_metrics": state.epoch_metrics,
                 "elapsed_s": state.elapsed_s, "epoch_at_target": state.epoch_at_target,
                 "time_to_target_s": state.time_to_target_s},
        ema=setup.ema.state_dict() if setup.ema is not None else None,
        rng={**rng_by_rank[0], "ranks": rng_by_rank} if len(rng_by_rank) > 1 else rng_by_rank[0],
        world_size=len(rng_by_rank), config=config, schedule_epochs=schedule_epochs,
    )


def restore(path: Path, setup: TrainSetup, loader, patience: int | None, model_name: str) -> FitState:
    """Load `last.pt` into the model, optimizer, scheduler and RNGs; the FitState to continue with."""
    checkpoint = load_checkpoint(path)
    saved_model = checkpoint.get("config", {}).get("model", {}).get("name")
    if saved_model != model_name:
        raise CnnbenchError(f"checkpoint {path} was written by a run of model {saved_model}; this run builds "
                            f"{model_name} (pass the same model=, or another trainer.resume)")
    try:
        setup.module.load_state_dict(checkpoint["model"])
        load_optimizer_state(setup.optimizer, checkpoint["optimizer"])
        if setup.scheduler is not None and checkpoint.get("scheduler") is not None:
            setup.scheduler.load_state_dict(checkpoint["scheduler"])
        if setup.ema is not None and checkpoint.get("ema") is not None:
            setup.ema.load_state_dict(checkpoint["ema"])
    except (RuntimeError, KeyError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0]
        raise CnnbenchError(f"checkpoint {path} does not fit this model/optimizer: {first_line}") from err
    set_rng_state(_rank_rng(checkpoint, path), loader, path)
    stopper = EarlyStopping(patience)
    stopper.load_state_dict(checkpoint["early_stopping"])
    cursor = None
    if checkpoint.get("cursor"):
        cursor = EpochCursor(**checkpoint["cursor"])
        if cursor.order is not None:
            cursor.order = cursor.order.to(loader.device)
        if not distributed.is_main():  # rank 0 carries the epoch's sums so far; they are summed over ranks
            cursor.loss_sum, cursor.correct = None, None
    history = checkpoint.get("history", {})
    return FitState(epoch=checkpoint["epoch"], stopper=stopper, cursor=cursor,
                    train_examples=list(history.get("train_examples", [])),
                    train_seconds=list(history.get("train_seconds", [])), first_step_s=history.get("first_step_s"),
                    epoch_metrics=list(history.get("epoch_metrics", [])), elapsed_s=history.get("elapsed_s", 0.0),
                    epoch_at_target=history.get("epoch_at_target"), time_to_target_s=history.get("time_to_target_s"))


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """The saved moments and steps, with this run's implementation: `load_state_dict` would also take `fused` and
    `foreach` from the file, so a CPU-written last.pt would train unfused on a GPU."""
    chosen = [{key: group[key] for key in IMPLEMENTATION if key in group} for group in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, implementation in zip(optimizer.param_groups, chosen, strict=True):
        group.update(implementation)


IMPLEMENTATION = ("fused", "foreach", "capturable", "differentiable")


def rng_state(loader) -> dict:
    """The random state that shapes what comes next: torch's (dropout), the run's own GPU's, the loader's order and
    augmentation (generators on the loader's device, which is why the device type is kept with them)."""
    state = {"torch": torch.get_rng_state(), "device": loader.device.type}
    if loader.device.type == "cuda":
        state["cuda_device"] = torch.cuda.get_rng_state(loader.device)
    if loader.generator is not None:
        state["data"] = loader.generator.get_state()
    if loader.augment_generator is not loader.generator:
        state["augment"] = loader.augment_generator.get_state()
    return state


def set_rng_state(state: dict, loader, path: Path | str = "last.pt") -> None:
    saved_on = state.get("device", "cuda" if "cuda" in state else "cpu")  # older files: one state per visible GPU
    if saved_on != loader.device.type:
        raise CnnbenchError(f"{path} was written by a run on {saved_on} and its data order and augmentation are "
                            f"random streams of that device; continue it with trainer.device={saved_on}")
    torch.set_rng_state(state["torch"])
    if "cuda_device" in state:
        torch.cuda.set_rng_state(state["cuda_device"], loader.device)
    elif "cuda" in state and loader.device.type == "cuda":
        own = loader.device.index or 0
        if own < len(state["cuda"]):
            torch.cuda.set_rng_state(state["cuda"][own], loader.device)
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
