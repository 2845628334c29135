"""SIGINT and SIGTERM ask the loop to stop; a second SIGINT stops at once; the handlers are put back after."""

from __future__ import annotations

import signal

import pytest

from cnnbench.errors import Interrupted
from cnnbench.runtime.signals import signal_name, signal_number, stop_on_signals


@pytest.mark.parametrize(("sig", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_sets_the_flag_and_the_run_exits_with_128_plus_its_number(capsys, sig, exit_code):
    before = signal.getsignal(sig)
    with stop_on_signals() as stop:
        assert not stop.requested
        signal.raise_signal(sig)
        assert stop.requested and stop.signal_name == signal_name(sig)
    assert signal.getsignal(sig) is before
    assert "finishing the current step and saving last.pt" in capsys.readouterr().err
    assert Interrupted(stop.signal_name, 2, 5, "run/checkpoints/last.pt").exit_code == exit_code


def test_a_second_sigint_aborts_at_once():
    with stop_on_signals(), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)


def test_signal_numbers_travel_between_ranks_as_integers():
    assert signal_number(None) == 0 and signal_name(signal_number("SIGTERM")) == "SIGTERM"
