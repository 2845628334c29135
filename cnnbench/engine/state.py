"""What the epoch loop carries from one epoch to the next, and what last.pt saves of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .loop import EpochCursor


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


@dataclass
class FitState:
    epoch: int = 0  # epochs completed
    stopper: EarlyStopping = field(default_factory=lambda: EarlyStopping(0))
    cursor: EpochCursor | None = None  # a partly done epoch
    train_examples: list[int] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    first_step_s: float | None = None  # the run's first training step (with torch.compile: the compilation)
    epoch_metrics: list[dict] = field(default_factory=list)  # metrics.csv's rows, to rewrite it on resume
    elapsed_s: float = 0.0  # seconds of the run until the last save (all sessions of a resumed run)
    epoch_at_target: int | None = None  # the first epoch whose val/acc reached trainer.target_acc
    time_to_target_s: float | None = None  # seconds since the run started until then
