"""Every error that ends a run or a command with a one-line message instead of a traceback."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from .runtime.install import MISSING_OPERATOR, broken_pair_message


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
        kept = (f"best.pt and last.pt keep the last good epoch ({epoch - 1})" if epoch and epoch > 1 else
                "no epoch had finished, so there is no checkpoint")
        super().__init__(f"training diverged at {where}: the loss is NaN or infinite (last finite loss "
                         f"{last_finite:.4g}); {kept}. "
                         "Try a lower optimizer.lr, a warmup (scheduler.warmup_epochs) or trainer.grad_clip")


class Interrupted(CnnbenchError):
    """SIGINT or SIGTERM stopped training after a step; last.pt holds the state to resume from."""

    def __init__(self, signal_name: str, epoch: int, step: int, checkpoint: Path):
        self.exit_code = 128 + int(getattr(signal, signal_name, signal.SIGINT))  # 130 for SIGINT, 143 for SIGTERM
        super().__init__(f"{signal_name}: stopped in epoch {epoch} after step {step}; the state is in {checkpoint}")


class Aborted(CnnbenchError):
    """Ctrl-C outside the training steps (start-up, checkpoint saving, the final test), or a second Ctrl-C."""

    exit_code = 128 + int(signal.SIGINT)


DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "cannot allocate memory")


def as_cnnbench_error(err: BaseException) -> CnnbenchError:
    """Any exception as the one line a user reads: what happened, to which file, what to do (the exception
    itself stays attached as the cause, for the log)."""
    if isinstance(err, CnnbenchError):
        return err
    mapped = CnnbenchError(_explain(err))
    if isinstance(err, KeyboardInterrupt):
        mapped = Aborted("interrupted (Ctrl-C)")
    mapped.__cause__ = err
    return mapped


def _explain(err: BaseException) -> str:
    reason = " ".join(str(err).split())[:300] or type(err).__name__
    if isinstance(err, OSError) and err.errno in DISK_FULL:
        return f"no space left on the device while writing {err.filename or 'a file'}; free some space"
    if isinstance(err, OSError) and err.errno in NOT_WRITABLE:
        return (f"{err.filename or 'a file'} is not writable ({err.strerror}); fix the permissions or choose "
                "another hydra.run.dir")
    if MISSING_OPERATOR in reason:
        return broken_pair_message(reason)
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or any(
            text in reason.lower() for text in OUT_OF_MEMORY):
        return (f"out of memory ({reason[:160]}); lower data.batch_size, data.eval_batch_size or data.resize, or "
                "use a smaller model")
    return f"{type(err).__name__}: {reason}"


def status_of(err: BaseException) -> str:
    """What summary.json says of a run that ended with `err`."""
    if isinstance(err, Diverged):
        return "diverged"
    if isinstance(err, Interrupted | Aborted | KeyboardInterrupt):
        return "interrupted"
    return "failed"


def announce(err: CnnbenchError, log: logging.Logger, where: str | None = None, prefix: str = "error") -> int:
    """Print `error: <message>` on stderr, keep the traceback in the log (debug level); the exit code.
    `where`: the log file that holds the traceback, named at the end of the line. CNNBENCH_DEBUG=1 prints it.
    `prefix`: what the line starts with instead of `error` (`stopped`, `sweep job 2 of 3 (#1) (<dir>) failed`)."""
    cause = err.__cause__ or err
    log.debug("stopped by %s", type(err).__name__, exc_info=cause)
    suffix = f" (the traceback is in {where})" if where and err.__cause__ is not None else ""
    print(f"{prefix}: {err}{suffix}", file=sys.stderr, flush=True)
    if os.environ.get("CNNBENCH_DEBUG"):
        traceback.print_exception(cause, file=sys.stderr)
    return err.exit_code
