"""A sweep job's side of the ledger: before it trains, whether it runs (and resumes its own folder), was done
before, is run by another live process, or is left pending because its launch is stopping; after, how it ended."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from . import ledger
from .job import Job
from .signals import STOP_SIGNALS, SWEEP_STOP, signal_name
from .sweeps import FAILED_JOB_VALUE, sweep_size

VAL_ACC_BEST = "val/acc_best"  # the value a sweeper maximises (engine.metrics' name, kept in the ledger)
_WORKER_LAUNCH: str | None = None


@dataclass
class SweepJob:
    sweep_dir: Path
    num: int
    folder: str
    launch: str | None
    in_launch_process: bool  # the basic launcher: the job runs in the launch's own process
    action: str  # run | done | taken | stop
    record: dict

    @property
    def label(self) -> str:
        total = sweep_size(self.sweep_dir / "multirun.yaml")
        return f"sweep job {self.num + 1}{f' of {total}' if total else ''} (#{self.num})"

    @property
    def resumes(self) -> bool:
        """An earlier launch started this job: it continues from its own folder's last.pt."""
        return self.record.get("earlier", "pending") != "pending" and \
            (self.sweep_dir / self.folder / "checkpoints" / "last.pt").is_file()


def begin_job(output_dir: Path, job: Job) -> SweepJob | None:
    """Inside a sweep, what this job does (see ledger.start_job); None outside one."""
    if not job.in_sweep or job.sweep_dir is None or job.number is None:
        return None
    sweep_dir = job.sweep_dir
    book = ledger.read(sweep_dir) or {}
    launches = [entry for entry in book.get("launches", []) if entry.get("pid") in (os.getpid(), os.getppid())
                and "ended" not in entry]
    launch = launches[-1]["id"] if launches else None
    in_launch_process = bool(launches) and launches[-1]["pid"] == os.getpid()
    global _WORKER_LAUNCH
    if not in_launch_process and launch != _WORKER_LAUNCH:  # a worker process reused by a later sweep
        SWEEP_STOP.clear()
        _WORKER_LAUNCH = launch
    if launch is not None and threading_main():
        for sig in STOP_SIGNALS:  # a worker process between its jobs: Ctrl-C stops the sweep, not the worker
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(sig, _worker_handler)
    folder = Path(str(output_dir)).name
    action, record = ledger.start_job(sweep_dir, job.number, list(job.overrides), folder, launch,
                                      stop_requested=SWEEP_STOP.requested)
    return SweepJob(sweep_dir, job.number, folder, launch, in_launch_process, action, record)


def threading_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def _worker_handler(signum, frame):
    SWEEP_STOP.signal_name = SWEEP_STOP.signal_name or signal_name(signum)


def end_job(job: SweepJob, state: str, **facts) -> None:
    ledger.end_job(job.sweep_dir, job.folder, state, **facts)


def stop_launch(job: SweepJob) -> None:
    """sweep.fail_fast: this launch starts no other job."""
    ledger.request_stop(job.sweep_dir, job.launch)


def skipped(job: SweepJob) -> float:
    """A job this launch does not run: done before, run by another live process, or its launch is stopping."""
    record = job.record
    if job.action == "done":
        print(f"{job.label} already {record['state']} ({job.sweep_dir / job.folder}): nothing to do", flush=True)
        return float(record.get(VAL_ACC_BEST) or FAILED_JOB_VALUE)
    if job.action == "taken":
        print(f"{job.label} is running in another process (pid {record.get('pid')} on {record.get('host')}): "
              "left to it", flush=True)
    else:
        drop_if_empty(job.sweep_dir / job.folder)
    return FAILED_JOB_VALUE


def drop_if_empty(folder: Path) -> None:
    """Hydra makes a job's folder before the job starts; a job that does not run leaves none."""
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
