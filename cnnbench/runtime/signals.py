"""Ctrl-C and SIGTERM: the training loop is asked to stop after the step it is in, so last.pt is exact."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """Set by a signal handler; the training loop stops after the step it is in."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


def signal_number(name: str | None) -> int:
    """SIGINT -> 2; None -> 0 (no stop requested)."""
    return int(getattr(signal, name)) if name else 0


def signal_name(number: int) -> str:
    return signal.Signals(number).name


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """SIGINT/SIGTERM set the flag; a second SIGINT stops at once (KeyboardInterrupt).

    Outside the main thread (a sweep launcher's worker thread) signals cannot be caught: the flag stays unset.
    """
    stop = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum, frame):
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.signal_name = signal_name(signum)
        print(f"{stop.signal_name} received: finishing the current step and saving last.pt "
              "(Ctrl-C again to abort at once)", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
