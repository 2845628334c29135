"""Learning-rate schedules, stepped once per optimizer step, each with an optional linear warmup.

Configs in conf/scheduler/ point `_target_` at these functions with `_partial_: true`; the runner
completes them with the optimizer and the step counts it knows only at run time. Epoch-valued
settings (warmup_epochs, step_epochs) are converted to steps, so `step` is piecewise constant per
epoch exactly as torch's StepLR stepped per epoch; `cosine` anneals smoothly per step where seed 001
stepped CosineAnnealingLR once per epoch (same end points, at most one epoch's worth of difference).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR


def _with_warmup(warmup_steps: int, after: Callable[[int], float]) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return after(step - warmup_steps)

    return factor


def _warmup_steps(warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    return min(int(round(warmup_epochs * steps_per_epoch)), max(total_steps - 1, 0))


def constant(optimizer: torch.optim.Optimizer, *, total_steps: int, steps_per_epoch: int,
             warmup_epochs: float = 0.0) -> LRScheduler:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    return LambdaLR(optimizer, _with_warmup(warmup, lambda step: 1.0))


def cosine(optimizer: torch.optim.Optimizer, *, total_steps: int, steps_per_epoch: int,
           warmup_epochs: float = 0.0, min_lr: float = 0.0) -> LRScheduler:
    """Cosine from the optimizer's lr down to `min_lr` (absolute, like CosineAnnealingLR's eta_min)."""
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    span = max(total_steps - warmup, 1)

    def per_group(base_lr: float) -> Callable[[int], float]:
        floor = min_lr / base_lr

        def after(step: int) -> float:
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, span) / span))

        return _with_warmup(warmup, after)

    return LambdaLR(optimizer, [per_group(group["lr"]) for group in optimizer.param_groups])


def step(optimizer: torch.optim.Optimizer, *, total_steps: int, steps_per_epoch: int,
         warmup_epochs: float = 0.0, step_epochs: int = 30, gamma: float = 0.1) -> LRScheduler:
    """Multiply the lr by `gamma` every `step_epochs` epochs (counted from the start of training)."""
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    every = max(int(step_epochs) * steps_per_epoch, 1)
    return LambdaLR(optimizer, _with_warmup(warmup, lambda s: gamma ** ((s + warmup) // every)))


def onecycle(optimizer: torch.optim.Optimizer, *, total_steps: int, steps_per_epoch: int,
             warmup_epochs: float = 0.0, pct_start: float = 0.3, div_factor: float = 25.0,
             final_div_factor: float = 1e4) -> LRScheduler:
    """torch's OneCycleLR peaking at the optimizer's lr; `warmup_epochs` > 0 sets the rising phase."""
    if warmup_epochs > 0:
        pct_start = min(warmup_epochs * steps_per_epoch / total_steps, 0.99)
    return OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps,
                      pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor,
                      cycle_momentum=False)


SCHEDULES = ("constant", "cosine", "step", "onecycle")  # what `scheduler._target_` may name, in this module


def past_its_end(scheduler: dict) -> tuple[str, str | None]:
    """A schedule's name and what it does after the steps it was built for (a resumed run that trains longer), from
    its settings as a config gives them (`_target_` one of this module's functions); None for the description when
    it cannot go on: onecycle's curve ends, and cosine with min_lr=0 would train at lr 0."""
    name = str(scheduler.get("_target_", "")).removeprefix(f"{__name__}.")
    after = {
        "onecycle": None,
        "cosine": f"stays at min_lr={scheduler.get('min_lr')}" if scheduler.get("min_lr") else None,
        "step": f"goes on dividing the lr every {scheduler.get('step_epochs')} epochs",
        "constant": "stays at the lr",
    }
    return name, after.get(name, "goes on")
