"""Errors that end a run with a one-line message instead of a traceback."""

import logging
import sys


class CnnbenchError(Exception):
    """Base class: the message is shown to the user as is, the traceback only goes to the log."""

    exit_code = 1


class ConfigError(CnnbenchError):
    """A config key has a value that is not allowed; the message names the key and what is allowed."""

    exit_code = 2


class DataError(CnnbenchError):
    """A dataset cannot be found, downloaded or read; the message says what to do."""


def announce(err: CnnbenchError, log: logging.Logger) -> int:
    """Print `error: <message>` on stderr, keep the traceback in the log (debug level); the exit code."""
    log.debug("stopped by %s", type(err).__name__, exc_info=err)
    print(f"error: {err}", file=sys.stderr)
    return err.exit_code
