"""Whose a folder or a checkpoint is, decided before anything is written.

A run writes only into a new or empty folder or a cnnbench run's own (its run.lock), never into a filesystem's
root, a system folder or the home folder itself. A fresh start in a dead run's folder (one that never saved a
checkpoint) sets the old records aside instead of appending to them. A checkpoint is loaded into a run only when it
was written by that run's config (the settings a resume may change aside).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .files import read_json
from .overrides import flatten

SUMMARY_FILE = "summary.json"
LOCK_FILE = "run.lock"
# Folders a run never writes into themselves; the trees under the first few hold the system's own files.
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys")
SYSTEM_FOLDERS = (*SYSTEM_TREES, "/home", "/media", "/mnt", "/opt", "/root", "/run", "/srv", "/tmp", "/usr", "/var")
SET_ASIDE_PREFIX = ".set-aside-"


def protected_folder(folder: Path) -> str | None:
    """Why a run may not write into `folder` (a filesystem's root, a system folder, the home folder), or None."""
    path = Path(os.path.abspath(Path(folder).expanduser()))
    resolved = path.resolve()
    if os.path.ismount(resolved) or resolved == Path(resolved.anchor):
        return "is the root of a filesystem"
    if resolved == Path.home().resolve():
        return "is your home folder itself"
    for system in SYSTEM_FOLDERS:
        if resolved == Path(system) or (system in SYSTEM_TREES and resolved.is_relative_to(system)):
            return f"is {'the' if resolved == Path(system) else 'inside the'} system folder {system}"
    return None


def is_cnnbench_run(folder: Path) -> bool:
    """A folder a cnnbench run wrote: its run.lock, or (runs older than locks) a summary.json with a fingerprint."""
    return (folder / LOCK_FILE).is_file() or "fingerprint" in (read_json(folder / SUMMARY_FILE) or {})


def foreign_folder(folder: Path) -> str | None:
    """What a folder that is neither new, nor empty, nor a cnnbench run holds (said in words), or None."""
    if not folder.is_dir() or is_cnnbench_run(folder):
        return None
    entries = sorted(f"{p.name}/" if p.is_dir() else p.name for p in folder.iterdir())
    if not entries:
        return None
    listed = ", ".join(entries[:6]) + (f" and {len(entries) - 6} more" if len(entries) > 6 else "")
    return f"is not empty and is not a cnnbench run's folder (it holds {listed})"


def foreign_sweep_folder(folder: Path) -> str | None:
    """`foreign_folder` for a sweep's folder: it is a sweep's when it holds the ledger or Hydra's multirun.yaml."""
    if any((folder / name).is_file() for name in ("sweep.json", "multirun.yaml")):
        return None
    return foreign_folder(folder)


def set_aside(run_dir: Path) -> Path | None:
    """Move the records of a dead run that left nothing to continue from (no last.pt: metrics.csv, TensorBoard
    events, summary.json, .hydra/, run.log, checkpoints/) into <run dir>/.set-aside-<time>/, so that a fresh start
    never appends to them; the folder they went to, or None when there were none."""
    records = [p for p in run_dir.iterdir() if p.name != LOCK_FILE and not p.name.startswith(SET_ASIDE_PREFIX)]
    if not records:
        return None
    target = run_dir / f"{SET_ASIDE_PREFIX}{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    for attempt in range(2, 100):
        if not target.exists():
            break
        target = target.with_name(f"{target.name.rsplit('_n', 1)[0]}_n{attempt}")
    target.mkdir()
    for record in records:
        record.rename(target / record.name)
    return target


def checkpoint_mismatch(checkpoint: Path, saved: dict, run_dir: Path, may_differ: tuple[str, ...]) -> str | None:
    """Why the config saved in `checkpoint` is not the one of the run in `run_dir` (its .hydra/config.yaml, else its
    summary.json), leaving out the keys in `may_differ` (and under them); None when it is, or nothing says."""
    import yaml

    try:
        own = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        own = None
    summary = read_json(run_dir / SUMMARY_FILE) or {}
    if not isinstance(own, dict):  # an older or partial folder: the model and dataset its summary names
        own = {"model": {"name": summary.get("model")}, "data": {"name": summary.get("dataset")}}
        if None in (own["model"]["name"], own["data"]["name"]):
            return None
    theirs, mine = flatten(saved), flatten(own)

    def counts(key: str) -> bool:
        return key in mine and not any(key == k or key.startswith(f"{k}.") for k in may_differ)

    differing = sorted(k for k in mine.keys() & theirs.keys() if counts(k) and mine[k] != theirs[k])
    if not differing:
        return None

    def described(config: dict) -> str:
        return f"{config.get('model.name')} on {config.get('data.name')}"

    detail = ", ".join(f"{k}={theirs[k]} (run: {mine[k]})" for k in differing[:3])
    more = f" and {len(differing) - 3} more" if len(differing) > 3 else ""
    return (f"checkpoint {checkpoint} is not this run's: it was written by {described(theirs)}, the run in {run_dir} "
            f"is {described(mine)} ({detail}{more}); put the run's own checkpoint back, or use it with its own run")
