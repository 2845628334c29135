"""What a launch runs and where: a fresh run, or the saved run `trainer.resume` names; the claim on its directory;
the records a launch leaves, and how a launch that did not complete ends (a refused one leaves nothing).

`trainer.resume` continues the saved run: the config saved in its last.pt, not the one composed for this
command. The command line may change only what cannot alter what was trained so far (`MAY_CHANGE`);
anything else is refused in one line naming each key, the value given and the value saved. `trainer.epochs`
may grow: the learning-rate schedule keeps the length it was built with (kept in last.pt), and one line says so.
"""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .config import shown, upgraded
from .engine.checkpoint import load_checkpoint
from .engine.schedulers import past_its_end
from .errors import Aborted, CnnbenchError, ConfigError, Interrupted, announce, as_cnnbench_error, status_of
from .runtime import runlog
from .runtime.files import save_json
from .runtime.job import Job
from .runtime.overrides import flatten, pop_dotted, set_dotted, shell_command
from .runtime.ownership import checkpoint_mismatch
from .runtime.rundir import (
    SUMMARY_FILE,
    Claim,
    ResumePlan,
    RunDirTaken,
    claim,
    drop_if_unused,
    remove_if_empty,
    write_run_records,
)
from .runtime.sweep_control import close_launch
from .runtime.sweep_job import SweepJob, end_job, stop_launch
from .runtime.sweeps import FAILED_JOB_VALUE

log = logging.getLogger(__name__)

# Where the images are, how they are read, where and for how long training goes on: not what was trained.
MAY_CHANGE = ("trainer.epochs", "trainer.patience", "trainer.progress_every", "trainer.device", "trainer.devices",
              "data.root", "data.download", "data.num_workers", "trainer.log_graph", "console.config")
FROM_THIS_LAUNCH = ("output_dir", "trainer.resume")
_ABSENT = "<absent>"


@dataclass(frozen=True)
class Launch:
    """Everything a launch decided before training, in plain values (it travels to the other ranks)."""

    config: dict  # the resolved config the run trains with
    plan: ResumePlan
    fingerprint: str
    schedule_epochs: int  # the length the learning-rate schedule is built with
    notices: list[str] = field(default_factory=list)
    hydra_dir: str = ""  # the directory Hydra made for this launch (removed if the run goes elsewhere, unused)


@dataclass(frozen=True)
class Continuation:
    config: dict  # the run's config from now on: the saved one with the allowed changes
    schedule_epochs: int  # the length the learning-rate schedule was built with
    notices: list[str] = field(default_factory=list)


def continued(cfg: DictConfig, checkpoint: Path, named: list[str] | None) -> Continuation:
    """The config a resume of `checkpoint` runs with. `named`: the keys the command line set (group choices
    included), whose values are compared with the saved ones; None compares every key (a config built in code)."""
    saved_state = load_checkpoint(checkpoint, mmap=True, require=("config", "model", "epoch"))
    saved = upgraded(saved_state["config"])
    mismatch = checkpoint_mismatch(checkpoint, saved_state["config"], checkpoint.parent.parent,
                                   MAY_CHANGE + FROM_THIS_LAUNCH)
    if mismatch:
        raise ConfigError(mismatch)
    current = OmegaConf.to_container(cfg, resolve=True)
    flat_saved, flat_current = flatten(saved), flatten(current)
    differing = sorted(k for k in flat_saved.keys() | flat_current.keys()
                       if flat_saved.get(k, _ABSENT) != flat_current.get(k, _ABSENT)
                       and not k.startswith(FROM_THIS_LAUNCH))
    if named is not None and all(OmegaConf.select(cfg, key, default=_ABSENT) != _ABSENT for key in named):
        # only what the command line set (a group with a package of its own, experiment=..., sets keys anywhere)
        differing = [k for k in differing if any(k == key or k.startswith(f"{key}.") for key in named)]
    refused = [k for k in differing if k not in MAY_CHANGE]
    if refused:
        listed = ", ".join(f"{k}={shown(flat_current.get(k))} (saved: {shown(flat_saved.get(k))})" for k in refused[:6])
        more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
        raise ConfigError(f"trainer.resume continues the run saved in {checkpoint}, whose config this command "
                          f"changes: {listed}{more}; leave these out to continue it, or start a new run")
    merged = copy.deepcopy(saved)
    for key in [*differing, *FROM_THIS_LAUNCH]:
        if key in flat_current:
            set_dotted(merged, key, flat_current[key])
        else:
            pop_dotted(merged, key)
    schedule_epochs = int(saved_state.get("schedule_epochs") or saved["trainer"]["epochs"])
    notices = _epochs_notice(merged, saved, int(saved_state.get("epoch", 0)), schedule_epochs)
    return Continuation(merged, schedule_epochs, notices)


def _epochs_notice(merged: dict, saved: dict, epochs_done: int, schedule_epochs: int) -> list[str]:
    epochs, before = merged["trainer"]["epochs"], saved["trainer"]["epochs"]
    if epochs == before:
        return []
    if epochs < epochs_done:
        raise ConfigError(f"trainer.epochs={epochs} is not allowed on resume: the run has already trained "
                          f"{epochs_done} epochs")
    change = f"trainer.epochs={epochs} (saved: {before})"
    if epochs <= schedule_epochs:
        return [f"{change}: training ends earlier; the learning-rate schedule keeps its {schedule_epochs}-epoch "
                "length"]
    schedule, after = past_its_end(merged.get("scheduler", {}))
    if after is None:
        what = "its one cycle cannot go on" if schedule == "onecycle" else "it would train at lr 0 (min_lr=0)"
        raise ConfigError(f"{change} is not allowed on resume with scheduler={schedule}: its curve ends with the "
                          f"saved {schedule_epochs} epochs and {what}; start a new run with trainer.epochs={epochs}")
    return [f"{change}: the learning-rate schedule keeps its {schedule_epochs}-epoch length; after it, it {after}"]


# --- the run directory: claimed, recorded ----------------------------------------------------------------------

def claim_launch(launch: Launch, job: Job, replan: Callable[[], Launch]) -> tuple[Claim, Launch]:
    """Claim the launch's run directory; a clock-named one taken by another launch of the same second becomes
    <name>_2, _3, ...; a run `trainer.resume=auto` chose that another launch took meanwhile is passed over
    (`replan` plans again, seeing it alive). Then the run log opens there and a fresh run writes its .hydra/
    records. The claim and the launch it is for."""
    try:
        held = _claim_first_free(launch, job)
    except RunDirTaken:
        if launch.config["trainer"].get("resume") != "auto" or launch.plan.checkpoint is None:
            raise
        launch = replan()
        held = _claim_first_free(launch, job)
    runlog.attach(held.run_dir)
    drop_if_unused(Path(launch.hydra_dir or held.run_dir), held.run_dir)
    if held.set_aside is not None:
        log.warning("%s held the records of a run that ended before saving a checkpoint; they are kept in %s and "
                    "this run starts afresh", held.run_dir, held.set_aside)
    if launch.plan.checkpoint is None:
        write_run_records(held.run_dir, {**launch.config, "output_dir": str(held.run_dir)}, list(job.overrides),
                          job.hydra)
    return held, launch


def _claim_first_free(launch: Launch, job: Job) -> Claim:
    run_dir, resuming = launch.plan.run_dir, launch.plan.checkpoint is not None
    renames = job.generated_dir and not resuming
    key = "trainer.resume" if resuming else "hydra.sweep.dir" if job.in_sweep else "hydra.run.dir"
    for attempt in range(1, 100):
        candidate = run_dir if attempt == 1 else run_dir.with_name(f"{run_dir.name}_{attempt}")
        try:
            return claim(candidate, resuming, key)
        except RunDirTaken:
            if not renames or attempt == 99:
                raise
    raise AssertionError("unreachable")


def failed(cfg: DictConfig, launched: Job, job: SweepJob | None, raised: BaseException) -> float:
    """One line for a run that did not complete, its summary and its ledger entry; in a sweep the other jobs go
    on (their exit code and the closing line show this one), except after Ctrl-C or SIGTERM. A launch refused
    before it owned a directory writes nothing, and the empty folder Hydra made for it goes."""
    err = as_cnnbench_error(raised)
    refused = isinstance(err, ConfigError) and runlog.attached() is None
    if runlog.attached() is None:
        drop_unclaimed(Path(cfg.output_dir), in_job=job is not None, generated=launched.generated_dir)
    else:
        record_failure(err, list(launched.overrides))
    run_dir = runlog.attached().parent if runlog.attached() else None
    stopped = isinstance(err, Interrupted | Aborted)
    continuation = continue_line(run_dir) if stopped else None
    if isinstance(err, Aborted):
        kept = "last.pt keeps the last finished epoch" if continuation else \
            "no epoch had finished, so there is nothing to resume"
        exit_code, err = err.exit_code, Aborted(f"{err}; {kept}")
        err.exit_code, err.__cause__ = exit_code, raised
    state = "refused" if refused else status_of(err)
    if job is not None:
        prefix = f"{job.label} ({job.sweep_dir / job.folder}) {'stopped' if stopped else state}"
    else:
        prefix = "stopped" if stopped else "error"
    exit_code = announce(err, log, where=str(runlog.attached()) if run_dir else None, prefix=prefix)
    if job is None:
        if continuation:
            print(continuation, file=sys.stderr, flush=True)
        sys.exit(exit_code)
    end_job(job, state, error=str(err).splitlines()[0] if str(err) else type(err).__name__,
            run_dir=str(run_dir) if run_dir else None)
    if stopped and job.in_launch_process:  # the basic launcher: end the sweep here, with its closing lines
        runlog.detach()
        sys.exit(close_launch() or exit_code)
    if not stopped and cfg.get("sweep", {}).get("fail_fast"):
        stop_launch(job)
    return FAILED_JOB_VALUE


def record_failure(err: CnnbenchError, overrides: list[str]) -> None:
    """A run that failed after it owned its directory, before its summary.json existed, gets one saying so."""
    owned = runlog.attached()
    if owned is None or (owned.parent / SUMMARY_FILE).is_file():
        return
    try:
        save_json(owned.parent / SUMMARY_FILE, {"status": status_of(err), "error": str(err),
                                               "overrides": overrides})
    except OSError:
        log.debug("the failure is not recorded in %s", owned.parent, exc_info=True)


def drop_unclaimed(hydra_dir: Path, in_job: bool, generated: bool) -> None:
    """Remove the folder Hydra made for a launch that never owned it, when it is empty: a clock-named run folder or
    a sweep job's folder. A folder named with hydra.run.dir may be the user's own: it stays."""
    if in_job or generated:
        remove_if_empty(hydra_dir)


def continue_line(run_dir: Path | None) -> str | None:
    """`continue: python -m cnnbench trainer.resume=<run dir>` when the run has a last.pt to continue from."""
    if run_dir is None or not (run_dir / "checkpoints" / "last.pt").is_file():
        return None
    return f"continue: {shell_command('python', '-m', 'cnnbench', f'trainer.resume={run_dir.absolute()}')}"
