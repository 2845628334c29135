"""Every error that ends a run or a command with a one-line message instead of a traceback."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path


class CnnbenchError(Exception):
    """Base class: the message is shown to the user as is, the traceback only goes to the log."""

    exit_code = 1


class ConfigError(CnnbenchError):
    """A config key or command-line argument has a value that is not allowed; the message names it."""

    exit_code = 2


class DataError(CnnbenchError):
    """A dataset cannot be found, downloaded or read; the message says what to do."""


class Diverged(CnnbenchError):
    """The loss became NaN or infinite at `step` (of `epoch`, once the epoch loop knows it)."""

    def __init__(self, step: int, last_finite: float, epoch: int | None = None):
        self.step, self.last_finite, self.epoch = step, last_finite, epoch
        where = f"epoch {epoch}, step {step}" if epoch else f"step {step}"
        super().__init__(f"training diverged at {where}: the loss is NaN or infinite (last finite loss "
                         f"{last_finite:.4g}); best.pt and last.pt keep the last good epoch. "
                         "Try a lower optimizer.lr, a warmup (scheduler.warmup_epochs) or trainer.grad_clip")


class Interrupted(CnnbenchError):
    """SIGINT or SIGTERM stopped training after a step; last.pt holds the state to resume from."""

    def __init__(self, signal_name: str, epoch: int, step: int, checkpoint: Path):
        self.exit_code = 128 + int(getattr(signal, signal_name, signal.SIGINT))  # 130 for SIGINT, 143 for SIGTERM
        super().__init__(f"{signal_name}: stopped in epoch {epoch} after step {step}; the state is in {checkpoint}. "
                         f"Continue with trainer.resume={Path(checkpoint).parent.parent}")


def status_of(err: BaseException) -> str:
    """What summary.json says of a run that ended with `err`."""
    if isinstance(err, Diverged):
        return "diverged"
    if isinstance(err, Interrupted | KeyboardInterrupt):
        return "interrupted"
    return "failed"


def announce(err: CnnbenchError, log: logging.Logger) -> int:
    """Print `error: <message>` on stderr, keep the traceback in the log (debug level); the exit code."""
    log.debug("stopped by %s", type(err).__name__, exc_info=err)
    print(f"error: {err}", file=sys.stderr)
    return err.exit_code
