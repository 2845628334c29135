"""Errors that end a run with a one-line message instead of a traceback."""


class CnnbenchError(Exception):
    """Base class: the message is shown to the user as is, the traceback only goes to the log."""

    exit_code = 1


class ConfigError(CnnbenchError):
    """A config key has a value that is not allowed; the message names the key and what is allowed."""

    exit_code = 2


class DataError(CnnbenchError):
    """A dataset cannot be found, downloaded or read; the message says what to do."""
