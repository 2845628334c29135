"""Run directories: which one a run writes to, and the claim that makes it the run's alone.

A run writes to a fresh directory, to the one `trainer.resume` names, or (`trainer.resume=auto`) to the
newest earlier run of the same config, which is continued when unfinished and left alone when finished.
Before anything is written, the run *claims* the directory: it takes an exclusive lock on `<dir>/run.lock`
for as long as it lives (the kernel releases it when the process ends, however it ends). A second process
cannot take the same lock, so two runs never share a directory, and a `running` run whose lock is free is
known to be dead.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .files import atomic_write, read_json
from .overrides import pop_dotted, shell_command
from .ownership import LOCK_FILE, SUMMARY_FILE, foreign_folder, is_cnnbench_run, protected_folder, set_aside

LAST = Path("checkpoints") / "last.pt"
# Settings that do not change what a run computes, so runs that differ only in them are "the same config".
NOT_PART_OF_THE_EXPERIMENT = ("output_dir", "trainer.resume", "trainer.progress_every")
FINISHED = ("completed", "diverged")


@dataclass(frozen=True)
class ResumePlan:
    run_dir: Path
    checkpoint: Path | None = None  # last.pt to continue from; None starts afresh
    finished: dict | None = None  # the summary of the run asked for, which already finished: nothing to do


def config_fingerprint(config: dict) -> str:
    """A short hash of a resolved config (plain containers), leaving out what does not change the experiment."""
    plain = copy.deepcopy(config)
    for dotted in NOT_PART_OF_THE_EXPERIMENT:
        pop_dotted(plain, dotted)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- planning: read only ---------------------------------------------------------------------------------

def plan_run_dir(run_dir: Path, resume: str | None, fingerprint: str) -> ResumePlan:
    """Where a run with `trainer.resume=<resume>` writes, given the directory Hydra made for it."""
    run_dir = Path(run_dir)
    if resume in (None, ""):
        return ResumePlan(run_dir)
    if resume == "auto":
        return plan_auto(run_dir, fingerprint)
    return plan_resume(Path(resume).expanduser(), resume)


def plan_resume(path: Path, spec: str) -> ResumePlan:
    """trainer.resume=<run dir> or <run dir>/checkpoints/last.pt: that run, continued where it stopped."""
    if path.is_file() or path.suffix == ".pt":
        if path.name != "last.pt" or path.parent.name != "checkpoints":
            raise ConfigError(f"trainer.resume={spec} is not allowed: expected a run directory or its "
                              f"checkpoints/last.pt (this file is not inside a run's checkpoints/ folder)")
        path = path.parent.parent
    summary = read_json(path / SUMMARY_FILE) or {}
    if summary.get("status") in FINISHED:
        return ResumePlan(path, finished=summary)
    if is_live(path):
        raise RunDirTaken(f"trainer.resume={spec}: the run in {path} is alive ({describe_owner(path)}); wait for it "
                          "to end, or stop it (Ctrl-C) and resume it then")
    if not path.is_dir() or not is_cnnbench_run(path):
        what = "is not a cnnbench run (no run.lock or summary.json)" if path.is_dir() else "does not exist"
        raise ConfigError(f"trainer.resume={spec}: {path} {what}; give a run directory, its checkpoints/last.pt, "
                          "or auto")
    if not (path / LAST).is_file():
        raise ConfigError(f"trainer.resume={spec}: there is no checkpoint to continue from in {path} (no "
                          f"{LAST}: the run ended before it saved one); start it again, its records set aside: "
                          f"{restart_command(path)}")
    return ResumePlan(path, path / LAST)


def restart_command(run_dir: Path) -> str:
    """The command that starts a run again from scratch in its own folder, with its own command line."""
    import yaml

    try:
        saved = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, ValueError, yaml.YAMLError):
        saved = []
    own = [line for line in saved if isinstance(line, str)
           and line.split("=", 1)[0].lstrip("+~") not in ("trainer.resume", "hydra.run.dir")]
    return shell_command("python", "-m", "cnnbench", *own, f"hydra.run.dir={run_dir.absolute()}")


def plan_auto(run_dir: Path, fingerprint: str) -> ResumePlan:
    """This directory's own earlier run (a sweep run again in the same folder), else the newest run with
    this fingerprint in this run's sweep or runs folder and their siblings, else a fresh start. A run that
    is alive (another process holds its lock) is someone else's: it is passed over."""
    runs = [run_dir / SUMMARY_FILE] + sorted(sibling_summaries(run_dir), key=lambda p: p.stat().st_mtime,
                                             reverse=True)
    for path in runs:
        summary = read_json(path) or {}
        if summary.get("fingerprint") != fingerprint or is_live(path.parent):
            continue
        if summary.get("status") in FINISHED:
            return ResumePlan(path.parent, finished=summary)
        if (path.parent / LAST).is_file():
            return ResumePlan(path.parent, checkpoint=path.parent / LAST)
    return ResumePlan(run_dir)


def sibling_summaries(run_dir: Path) -> set[Path]:
    found: set[Path] = set()
    for root in {run_dir.parent, run_dir.parent.parent}:
        for pattern in (f"*/{SUMMARY_FILE}", f"*/*/{SUMMARY_FILE}"):
            found.update(p for p in root.glob(pattern) if p.parent != run_dir)
    return found


def holds_a_run(run_dir: Path) -> bool:
    """A directory holds a run once it has something to resume or a finished result; a run that failed or was
    killed before its first epoch ended leaves it free."""
    summary = read_json(run_dir / SUMMARY_FILE) or {}
    return summary.get("status") in FINISHED or (run_dir / LAST).is_file()


# --- claiming: the run's alone -------------------------------------------------------------------------------

class RunDirTaken(ConfigError):
    """The directory belongs to another run (alive, finished, or resumable)."""


@dataclass
class Claim:
    """This process's hold on a run directory (the lock lives as long as the file stays open)."""

    run_dir: Path
    fd: int
    set_aside: Path | None = None  # where a dead run's records went before this fresh start

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def claim(run_dir: Path, resuming: bool, key: str = "hydra.run.dir") -> Claim:
    """Lock `run_dir` for this process. Only a new or empty folder, or a cnnbench run's, is taken (`key` names the
    setting that chose it); a fresh run may not take a directory that holds a run, and nobody may take one that a
    live process holds. A fresh start in a dead run's folder (no checkpoint to continue) sets its records aside
    first (`Claim.set_aside`); temporary files a killed run left behind are removed."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{key}={run_dir} is a file, not a directory; choose another {key}")
    problem = protected_folder(run_dir) or foreign_folder(run_dir)
    if problem:
        raise ConfigError(f"{key}={run_dir} {problem}; nothing was written there: choose a new or empty folder "
                          f"with {key}=<folder>")
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        instead = "" if key == "trainer.resume" else f", or choose another {key}"
        raise RunDirTaken(f"{key}={run_dir} is in use by a live run ({describe_owner(run_dir)}); wait for it to "
                          f"end{instead}") from None
    if not resuming and holds_a_run(run_dir):
        os.close(fd)
        status = (read_json(run_dir / SUMMARY_FILE) or {}).get("status")
        if status in FINISHED:
            raise RunDirTaken(f"{key}={run_dir} already holds a finished run ({status}); choose another {key} for a "
                              "new run")
        resume = shell_command("python", "-m", "cnnbench", f"trainer.resume={run_dir.absolute()}")
        raise RunDirTaken(f"{key}={run_dir} already holds a run that can be continued; choose another {key}, "
                          f"or continue it: {resume}")
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(owner()).encode())
    remove_temporaries(run_dir)
    return Claim(run_dir, fd, None if resuming else set_aside(run_dir))


def owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def describe_owner(run_dir: Path) -> str:
    who = read_json(run_dir / LOCK_FILE) or {}
    return f"pid {who.get('pid', '?')} on {who.get('host', '?')} since {who.get('since', '?')}"


def is_live(run_dir: Path) -> bool:
    """Whether a process holds the run's lock now (False for runs written before locks existed)."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def status_now(run_dir: Path, summary: dict) -> str:
    """summary.json's status, except that a `running` run nobody holds any more is `stale` (it was killed,
    lost its machine or its disk)."""
    status = str(summary.get("status", "incomplete"))
    if status == "running" and (Path(run_dir) / LOCK_FILE).exists() and not is_live(run_dir):
        return "stale"
    return status


def remove_temporaries(run_dir: Path) -> None:
    for folder in (run_dir, run_dir / "checkpoints"):
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def drop_if_unused(hydra_dir: Path, run_dir: Path) -> None:
    """Remove the directory Hydra made for a launch that runs elsewhere (a resume), if nothing is in it."""
    if hydra_dir.resolve() != run_dir.resolve():
        remove_if_empty(hydra_dir)


def remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def write_run_records(run_dir: Path, config: dict, overrides: list[str], hydra: dict | None) -> None:
    """<run dir>/.hydra/: the resolved config, the command-line overrides and Hydra's own settings, written by
    the run that owns the directory (Hydra itself is told not to, so a refused launch overwrites nothing)."""
    import yaml

    records = {"config.yaml": config, "overrides.yaml": overrides}
    if hydra is not None:
        records["hydra.yaml"] = {"hydra": hydra}
    for name, payload in records.items():
        text = yaml.safe_dump(payload, sort_keys=False)
        atomic_write(run_dir / ".hydra" / name, lambda tmp, text=text: Path(tmp).write_text(text))
