"""Ctrl-C, SIGTERM and SIGHUP (a closed terminal): the training loop is asked to stop after the step it is in, so
last.pt is exact; outside the training loop (start-up, data loading, the final test) they end the run at once."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import Aborted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopFlag:
    """Set by a signal handler; the training loop stops after the step it is in."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def clear(self) -> None:
        self.signal_name = None


# This process's sweep was asked to stop: its running job stops after its step, no other job starts.
SWEEP_STOP = StopFlag()


def signal_number(name: str | None) -> int:
    """SIGINT -> 2; None -> 0 (no stop requested)."""
    return int(getattr(signal, name)) if name else 0


def signal_name(number: int) -> str:
    return signal.Signals(number).name


@contextmanager
def stop_on_signals(in_sweep: bool = False, quiet: bool = False) -> Iterator[StopFlag]:
    """SIGINT/SIGTERM set the flag; a second SIGINT stops at once (KeyboardInterrupt). In a sweep the flag starts
    as SWEEP_STOP (a stop asked for while the job started up) and a signal sets both. `quiet`: a sweep's worker
    process, whose launch says it once for all.

    Outside the main thread (a sweep launcher's worker thread) signals cannot be caught: the flag stays unset.
    """
    stop = StopFlag()
    if in_sweep:
        stop.signal_name = SWEEP_STOP.signal_name
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum, frame):
        if stop.signal_name == "SIGINT" and signum == signal.SIGINT:  # Ctrl-C twice (a SIGTERM between counts not)
            raise KeyboardInterrupt
        if stop.requested:
            return
        stop.signal_name = signal_name(signum)
        if in_sweep:
            SWEEP_STOP.signal_name = stop.signal_name
        if not quiet:
            print(f"{stop.signal_name} received: finishing the current step and saving last.pt "
                  "(Ctrl-C again to abort at once)", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def abort_on_signals(enabled: bool = True) -> Iterator[None]:
    """SIGTERM and SIGHUP raise Aborted (exit code 128 + the signal) wherever the run is, as Ctrl-C raises
    KeyboardInterrupt, so that the run ends with its summary and one line instead of dying silently; the training
    loop's `stop_on_signals` takes over while it runs. Later signals are ignored while the run ends."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handle(signum, frame):
        if received:
            return
        received.append(signum)
        error = Aborted(f"{signal_name(signum)} received outside the training steps")
        error.exit_code = 128 + signum
        raise error

    terminating = tuple(sig for sig in STOP_SIGNALS if sig != signal.SIGINT)
    previous = {sig: signal.signal(sig, handle) for sig in terminating}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
