"""A sweep's ledger: `<sweep dir>/sweep.json`, the one record of what the sweep is and how each of its jobs stands.

It holds the sweep's overrides (what makes it this sweep), the command that continues it, its launches, and one
entry per job: number, overrides, folder, config fingerprint and state. The file is only ever replaced whole
(written aside, renamed) under an exclusive lock on `<sweep dir>/sweep.lock`, so that the launches and the
parallel jobs of one sweep, and two sweeps started at once, read and change it one at a time.

Job states: `pending` (listed, never started), `running` (with pid and host), `completed`, `failed`, `diverged`,
`interrupted` and `refused` (a value the job's validation refused). A `running` job whose process is gone (killed,
a lost machine) reads as `interrupted`.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError
from .files import read_json, save_json
from .rundir import is_live

LEDGER_FILE = "sweep.json"
LOCK_FILE = "sweep.lock"
FORMAT = 1
STATES = ("pending", "running", "completed", "failed", "diverged", "interrupted", "refused")
DONE = ("completed", "diverged")  # a continued sweep leaves these alone
ENDED_BADLY = ("failed", "diverged", "refused")


class OtherSweep(ConfigError):
    """The sweep folder holds another sweep (other overrides)."""


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


@contextmanager
def locked(sweep_dir: Path) -> Iterator[dict | None]:
    """The ledger, read under the sweep's lock (None when there is none yet); held until the block ends."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(sweep_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield read_json(sweep_dir / LEDGER_FILE)
    finally:
        os.close(fd)


def read(sweep_dir: Path) -> dict | None:
    return read_json(Path(sweep_dir) / LEDGER_FILE)


def write(sweep_dir: Path, ledger: dict) -> None:
    ledger["updated"] = now()
    save_json(Path(sweep_dir) / LEDGER_FILE, ledger)


def open_launch(sweep_dir: Path, overrides: list[str], continue_command: list[str], planned: list[dict],
                launcher: str) -> str:
    """Start (or continue) the sweep in `sweep_dir`: the ledger is made, or checked to be of the same sweep;
    the launch's id. `planned`: the jobs known up front ({num, overrides, folder}), listed as pending."""
    sweep_dir = Path(sweep_dir)
    launch = {"id": uuid.uuid4().hex[:8], "pid": os.getpid(), "host": socket.gethostname(), "started": now(),
              "launcher": launcher}
    with locked(sweep_dir) as ledger:
        if ledger is None:
            ledger = {"format": FORMAT, "sweep_dir": str(sweep_dir.resolve()), "overrides": overrides,
                      "continue": continue_command, "created": now(), "launches": [], "jobs": []}
        elif ledger.get("overrides") != overrides:
            raise OtherSweep(other_sweep_message(sweep_dir, ledger, overrides))
        ledger["launches"].append(launch)
        known = {job["folder"] for job in ledger["jobs"]}
        ledger["jobs"].extend({**job, "state": "pending"} for job in planned if job["folder"] not in known)
        write(sweep_dir, ledger)
    return launch["id"]


def other_sweep_message(sweep_dir: Path, ledger: dict, overrides: list[str]) -> str:
    import shlex

    theirs = " ".join(ledger.get("overrides") or []) or "no overrides"
    return (f"hydra.sweep.dir={sweep_dir} holds another sweep ({theirs}; this one: {' '.join(overrides) or 'none'});"
            f" continue that one with: {shlex.join(ledger.get('continue') or [])}; or choose another hydra.sweep.dir")


def adopt_legacy(sweep_dir: Path, overrides: list[str] | None) -> None:
    """A sweep folder written without a ledger (an older cnnbench, or by hand) with other overrides is refused."""
    if overrides is not None and overrides != [] and read(sweep_dir) is None:
        raise OtherSweep(f"hydra.sweep.dir={sweep_dir} holds another sweep (multirun.yaml: {' '.join(overrides)});"
                         " choose another hydra.sweep.dir")


def find(ledger: dict, folder: str) -> dict | None:
    return next((job for job in ledger["jobs"] if job["folder"] == folder), None)


def alive(job: dict, sweep_dir: Path | None = None) -> bool:
    """Whether a `running` job's process still runs: its pid on this host; on another host (a SLURM node), whether
    its run directory's lock is held (as reliable as the shared filesystem's flock)."""
    if job.get("host") != socket.gethostname():
        return sweep_dir is None or is_live(Path(sweep_dir) / job["folder"])
    try:
        os.kill(int(job["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, KeyError):
        return True
    return True


def state_now(job: dict, sweep_dir: Path | None = None) -> str:
    state = job.get("state", "pending")
    return "interrupted" if state == "running" and not alive(job, sweep_dir) else state


def start_job(sweep_dir: Path, num: int, overrides: list[str], folder: str, launch: str | None,
              stop_requested: bool = False) -> tuple[str, dict]:
    """Decide what this job does: `run` (marked running for this process), `done` (it completed or diverged
    before), `taken` (another live process runs it), `stop` (its launch is stopping: it stays as it was)."""
    with locked(sweep_dir) as ledger:
        if ledger is None:  # a sweep launched without the ledger's callback (a custom config): just run
            return "run", {}
        job = find(ledger, folder)
        if job is None:
            job = {"num": num, "overrides": overrides, "folder": folder, "state": "pending"}
            ledger["jobs"].append(job)
        stopping = stop_requested or launch in ledger.get("stopping", [])
        state = state_now(job, sweep_dir)
        if state in DONE:
            return "done", dict(job)
        if state == "running" and job.get("pid") != os.getpid():
            return "taken", dict(job)
        if stopping:
            write(sweep_dir, ledger)
            return "stop", dict(job)
        earlier = state
        job.update(state="running", pid=os.getpid(), host=socket.gethostname(), launch=launch, started=now())
        write(sweep_dir, ledger)
        return "run", {**job, "earlier": earlier}


def end_job(sweep_dir: Path, folder: str, state: str, **facts) -> None:
    """Record how a job ended (`facts`: run_dir, fingerprint, error, val/acc_best...)."""
    with locked(sweep_dir) as ledger:
        if ledger is None:
            return
        job = find(ledger, folder)
        if job is None:
            return
        job.update({k: v for k, v in facts.items() if v is not None}, state=state, ended=now())
        job.pop("pid", None) if state != "running" else None
        write(sweep_dir, ledger)


def request_stop(sweep_dir: Path, launch: str | None) -> None:
    """The launch stops starting jobs (sweep.fail_fast): the ones it has not started stay pending."""
    with locked(sweep_dir) as ledger:
        if ledger is None or launch is None:
            return
        ledger.setdefault("stopping", []).append(launch)
        for entry in ledger["launches"]:
            if entry["id"] == launch:
                entry["stopped"] = "sweep.fail_fast"
        write(sweep_dir, ledger)


def close_launch(sweep_dir: Path, launch: str | None) -> dict | None:
    """Mark the launch ended; the ledger as it now stands."""
    with locked(sweep_dir) as ledger:
        if ledger is None:
            return None
        for entry in ledger["launches"]:
            if entry["id"] == launch:
                entry["ended"] = now()
        if launch in ledger.get("stopping", []):
            ledger["stopping"].remove(launch)
        write(sweep_dir, ledger)
        return ledger


SHOWN_ORDER = ("completed", "diverged", "failed", "refused", "interrupted", "running", "pending")


def counts(ledger: dict) -> dict[str, int]:
    """Jobs per state, the finished ones first."""
    found: dict[str, int] = {}
    for job in ledger["jobs"]:
        state = state_now(job, ledger.get("sweep_dir"))
        found[state] = found.get(state, 0) + 1
    return {state: found[state] for state in SHOWN_ORDER if state in found}
