"""Which run directory a run writes to: a fresh one, the one `trainer.resume` names, or (with
`trainer.resume=auto`) the newest earlier run of the same config, which is continued when unfinished
and left alone when finished."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .files import read_json

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
# Settings that do not change what a run computes, so runs that differ only in them are "the same config".
NOT_PART_OF_THE_EXPERIMENT = ("output_dir", "trainer.resume", "trainer.progress_every")
FINISHED = ("completed", "diverged")


@dataclass(frozen=True)
class ResumePlan:
    run_dir: Path
    checkpoint: Path | None = None  # last.pt to continue from; None starts afresh
    finished: dict | None = None  # the summary of an identical run that already finished: nothing to do


def config_fingerprint(config: dict) -> str:
    """A short hash of a resolved config (plain containers), leaving out what does not change the experiment."""
    plain = copy.deepcopy(config)
    for dotted in NOT_PART_OF_THE_EXPERIMENT:
        *parents, leaf = dotted.split(".")
        node = plain
        for key in parents:
            node = node.get(key, {})
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan_run_dir(run_dir: Path, resume: str | None, fingerprint: str) -> ResumePlan:
    """Where a run with `trainer.resume=<resume>` writes, given the directory Hydra made for it."""
    spec, run_dir = resume, Path(run_dir)
    if spec in (None, ""):
        refuse_used_run_dir(run_dir)
        return ResumePlan(run_dir)
    if spec == "auto":
        return plan_auto(run_dir, fingerprint)
    if run_dir.resolve() == Path(spec).resolve():  # resuming in the directory Hydra was told to use
        return ResumePlan(run_dir, run_dir / "checkpoints" / "last.pt")
    path = Path(spec)
    checkpoint = path / "checkpoints" / "last.pt" if path.is_dir() else path
    if not checkpoint.is_file():
        raise ConfigError(f"trainer.resume={spec}: there is no checkpoint at {checkpoint} "
                          "(give a run directory, a last.pt, or auto)")
    return ResumePlan(checkpoint.parent.parent, checkpoint)


def plan_auto(run_dir: Path, fingerprint: str) -> ResumePlan:
    """This directory's own earlier run (a sweep run again in the same folder), else the newest run with
    this fingerprint in this run's sweep or runs folder and their siblings, else a fresh start."""
    runs = [run_dir / SUMMARY_FILE] + sorted(sibling_summaries(run_dir), key=lambda p: p.stat().st_mtime,
                                             reverse=True)
    for path in runs:
        summary = read_json(path) or {}
        if summary.get("fingerprint") != fingerprint:
            continue
        if summary.get("status") in FINISHED:
            return ResumePlan(path.parent, finished=summary)
        if (path.parent / "checkpoints" / "last.pt").is_file():
            return ResumePlan(path.parent, checkpoint=path.parent / "checkpoints" / "last.pt")
    refuse_used_run_dir(run_dir)
    return ResumePlan(run_dir)


def sibling_summaries(run_dir: Path) -> set[Path]:
    found: set[Path] = set()
    for root in {run_dir.parent, run_dir.parent.parent}:
        for pattern in (f"*/{SUMMARY_FILE}", f"*/*/{SUMMARY_FILE}"):
            found.update(p for p in root.glob(pattern) if p.parent != run_dir)
    return found


def refuse_used_run_dir(run_dir: Path) -> None:
    # Two runs must never write into one directory (for example two launches in the same second).
    summary = read_json(run_dir / SUMMARY_FILE) or {}
    if summary.get("status", "failed") != "failed" or (run_dir / "checkpoints").exists():
        raise ConfigError(f"output_dir {run_dir} already holds a run; choose another hydra.run.dir, "
                          f"or continue it with trainer.resume={run_dir}")


def move_run_log(old_dir: Path, new_dir: Path) -> None:
    """Point the run's log file at `new_dir`, and drop `old_dir` if Hydra made it and nothing else is in it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == old_dir.resolve():
            moved = logging.FileHandler(new_dir / Path(handler.baseFilename).name, mode="a")
            moved.setFormatter(handler.formatter)
            moved.setLevel(handler.level)
            root.addHandler(moved)
            root.removeHandler(handler)
            handler.close()
    leftovers = {p.name for p in old_dir.iterdir()} if old_dir.is_dir() else set()
    if leftovers <= {".hydra", "run.log"}:
        shutil.rmtree(old_dir, ignore_errors=True)
    log.info("this run continues in %s", new_dir)
