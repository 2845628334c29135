"""run.log: every record of a run, written only once the run owns its directory.

Hydra configures logging before a run has claimed its directory; a launch that is refused (the directory
holds another run) must not write into it. `RunLog` (conf/hydra/job_logging/cnnbench.yaml) keeps records
in memory until `attach(run_dir)` opens `<run_dir>/run.log`; a launch that never owns a directory writes none.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

RUN_LOG = "run.log"
BUFFERED = 20_000  # records kept before a directory is attached (the oldest go first)


class RunLog(logging.Handler):
    """A file handler whose file is chosen after the run has claimed its directory."""

    def __init__(self, level: int = logging.NOTSET):
        super().__init__(level)
        self.pending: list[str] = []
        self.file = None
        self.path: Path | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            if self.file is None:
                self.pending = [*self.pending[-BUFFERED + 1:], line]
            else:
                self.file.write(line)
                self.file.flush()
        except OSError:  # a full disk or a lost directory: the console's one line says what failed
            pass
        except Exception:  # logging must never stop a run
            self.handleError(record)

    def attach(self, run_dir: Path) -> None:
        """Write what was logged so far, and everything from now on, to <run_dir>/run.log (appended)."""
        path = Path(run_dir) / RUN_LOG
        if self.path == path:
            return
        self.acquire()
        try:
            if self.file is not None:
                self.file.close()
            self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open while the run logs)
            self.path = path
            self.file.writelines(self.pending)
            self.file.flush()
            self.pending = []
        finally:
            self.release()

    def detach(self) -> None:
        """Close the file; what is logged from now on waits for the next `attach`."""
        self.acquire()
        try:
            if self.file is not None:
                with contextlib.suppress(OSError):  # a full disk: the console's one line said what failed
                    self.file.close()
            self.file, self.path, self.pending = None, None, []
        finally:
            self.release()

    def close(self) -> None:
        self.detach()
        super().close()


def run_logs() -> list[RunLog]:
    return [h for h in logging.getLogger().handlers if isinstance(h, RunLog)]


def attach(run_dir: Path) -> None:
    """Send this process's run log (if Hydra configured one) to <run_dir>/run.log."""
    for handler in run_logs():
        handler.attach(run_dir)


def detach() -> None:
    """The run is over (one process may run several, in tests and notebooks): its log file is closed."""
    for handler in run_logs():
        handler.detach()


def attached() -> Path | None:
    paths = [h.path for h in run_logs() if h.path is not None]
    return paths[0] if paths else None
