"""How long the whole plan takes, said once a few steps have been timed: `estimate: ...` when it is long.

The rate is measured on this session's first training steps after the first one (which includes warm-up and, with
torch.compile, compilation). Validation and the test are forward passes only, counted at a third of a training
step per image (forward and backward cost about three forwards).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

LONG_PLAN_S = 180.0  # plans shorter than this are not announced
VERY_LONG_ON_CPU_S = 3600.0
TIMED_STEPS = 20  # measure over at most this many steps after the first ...
TIMED_SECONDS = 5.0  # ... or this long, whichever comes first
CPU_PRESETS = {"fashion_mnist": "experiment=fmnist_fast_cpu"}


@dataclass(frozen=True)
class Plan:
    epochs: int  # epochs left to train in this session
    steps_per_epoch: int
    batch_size: int  # images per training step (all ranks)
    eval_images: int  # validation images per epoch
    test_images: int
    device: str  # cpu, cuda, mps
    dataset: str


def shown_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class PlanEstimate:
    """Fed every training step of the session's first epoch; says the estimate once through `say`."""

    def __init__(self, plan: Plan, say: Callable[[str], None], clock: Callable[[], float] = time.perf_counter):
        self.plan, self.say, self.clock = plan, say, clock
        self.first_step_done: float | None = None
        self.first_step = 0
        self.done = False

    def step(self, step: int) -> None:
        if self.done:
            return
        now = self.clock()
        if self.first_step_done is None:
            self.first_step_done, self.first_step = now, step
            return
        timed = step - self.first_step
        if timed >= TIMED_STEPS or now - self.first_step_done >= TIMED_SECONDS or step >= self.plan.steps_per_epoch:
            self.done = True
            if timed > 0:
                self.announce((now - self.first_step_done) / timed, timed)

    def announce(self, step_s: float, timed: int) -> None:
        plan = self.plan
        image_s = step_s / plan.batch_size
        total = (plan.epochs * (plan.steps_per_epoch * step_s + plan.eval_images * image_s / 3)
                 + plan.test_images * image_s / 3)
        if total < LONG_PLAN_S:
            return
        line = (f"estimate: the whole plan ({plan.epochs} epoch{'s' if plan.epochs != 1 else ''} of "
                f"{plan.steps_per_epoch:,} steps, validation and the test) takes about {shown_duration(total)} on "
                f"{plan.device}, at {1 / image_s:,.0f} images/s (timed over {timed} steps)")
        if plan.device == "cpu" and total >= VERY_LONG_ON_CPU_S:
            preset = CPU_PRESETS.get(plan.dataset)
            line += ("; on a GPU (trainer.device=cuda) it takes minutes"
                     + (f", and {preset} is the recipe made for a CPU" if preset else "")
                     + "; fewer trainer.epochs or a smaller model also shorten it")
        self.say(line)
