"""A sweep that can be stopped, continued and run again: its ledger kept by the launch and by each job, Ctrl-C,
and the closing lines (`sweep finished: ...`, and `continue: <command>` when something is left to do).

The launch (the process Hydra's multirun runs in) opens the ledger before the sweeper starts: a folder holding
another sweep is refused there, before anything is written; the same sweep continues. Each job asks the ledger
first (`begin_job`): a job that completed (or diverged) is not trained again, one that another live process runs
is left to it, an interrupted one resumes from its own folder's last.pt. Ctrl-C or SIGTERM stops the running jobs
after their step (they save last.pt), starts no other, and ends with `continue: <command>`: the original overrides
with this `hydra.sweep.dir`, which does all of the above.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from . import ledger
from .job_labels import job_folder_name, register_job_dir_resolver
from .overrides import Override, parse_overrides, path_value, shell_command
from .signals import STOP_SIGNALS, SWEEP_STOP, signal_name, signal_number
from .sweeps import JOBLIB_LAUNCHER

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


# --- the launch ----------------------------------------------------------------------------------------------

@dataclass
class LaunchState:
    sweep_dir: Path
    launch: str
    multirun_yaml: bytes | None  # the earlier sweep's multirun.yaml, put back when this launch ends
    previous_handlers: dict


_LAUNCH: LaunchState | None = None


def identity(task_overrides: list[str]) -> list[str]:
    """What makes a sweep this sweep: its overrides, without Hydra's settings and trainer.resume."""
    return [line for line in task_overrides if not Override.from_text(line).is_hydra
            and Override.from_text(line).key != "trainer.resume"]


def continue_command(config: DictConfig, sweep_dir: Path) -> list[str]:
    hydra_lines = [line for line in config.hydra.overrides.hydra
                   if Override.from_text(line).key not in ("hydra.sweep.dir", "hydra.mode")]
    return ["python", "-m", "cnnbench", "-m", *hydra_lines, *config.hydra.overrides.task,
            f"hydra.sweep.dir={path_value(sweep_dir)}"]


def planned_jobs(config: DictConfig) -> list[dict]:
    """The jobs of a basic-sweeper sweep, as the sweeper will number them; [] for another sweeper."""
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return []
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    try:
        params = config.hydra.sweeper.get("params") or {}
        lines = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
        parsed = parse_overrides(lines)
        from hydra.core.override_parser.overrides_parser import OverridesParser

        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(lines), None)
    except Exception:  # a sweep only the sweeper can expand (glob over a group): jobs are listed as they start
        return []
    swept = {o.key: o.sweep for o in parsed if o.sweep}
    return [{"num": num, "overrides": job, "folder": job_folder_name(num, job, swept)}
            for num, job in enumerate(batches[0])]


def open_launch(config: DictConfig) -> None:
    """on_multirun_start: the ledger opened (or the sweep refused), Ctrl-C taken over, multirun.yaml kept."""
    global _LAUNCH
    SWEEP_STOP.clear()
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    overrides = identity(list(config.hydra.overrides.task))
    saved_multirun = sweep_dir / "multirun.yaml"
    earlier = saved_multirun.read_bytes() if saved_multirun.is_file() else None
    if earlier is not None and ledger.read(sweep_dir) is None:
        ledger.adopt_legacy(sweep_dir, _legacy_overrides(saved_multirun))
    launcher = str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1]
    launch = ledger.open_launch(sweep_dir, overrides, continue_command(config, sweep_dir), planned_jobs(config),
                                launcher)
    forward = config.hydra.launcher.get("_target_") == JOBLIB_LAUNCHER
    previous = {sig: signal.signal(sig, _launch_handler(forward)) for sig in STOP_SIGNALS}
    _LAUNCH = LaunchState(sweep_dir, launch, earlier, previous)
    atexit.register(_put_back_multirun)


def _legacy_overrides(multirun_yaml: Path) -> list[str] | None:
    try:
        return identity(list(OmegaConf.load(multirun_yaml).hydra.overrides.task))
    except Exception:
        return None


def _launch_handler(forward: bool):
    def handle(signum, frame):
        if SWEEP_STOP.signal_name == "SIGINT" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if SWEEP_STOP.requested:
            return
        SWEEP_STOP.signal_name = signal_name(signum)
        print(f"{SWEEP_STOP.signal_name} received: the running jobs finish their step and save last.pt, no other "
              "job starts (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
        if forward:
            _signal_children(signal.SIGTERM)
    return handle


def _signal_children(signum: int) -> None:
    """The launcher's worker processes (a `kill` reaches only this one; Ctrl-C reaches the whole group)."""
    for task in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        for pid in task.read_text().split():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid), signum)


def _put_back_multirun() -> None:
    if _LAUNCH is not None and _LAUNCH.multirun_yaml is not None:
        path = _LAUNCH.sweep_dir / "multirun.yaml"
        if not path.is_file() or path.read_bytes() != _LAUNCH.multirun_yaml:
            from .files import atomic_write

            atomic_write(path, lambda tmp: Path(tmp).write_bytes(_LAUNCH.multirun_yaml))


def close_launch() -> int:
    """The sweep's closing line (and `continue:` when something is left to do); the launch's exit code."""
    global _LAUNCH
    state, _LAUNCH = _LAUNCH, None
    if state is None:
        return 0
    for sig, handler in state.previous_handlers.items():
        signal.signal(sig, handler)
    _LAUNCH = state
    _put_back_multirun()
    _LAUNCH = None
    book = ledger.close_launch(state.sweep_dir, state.launch)
    if book is None:
        return 0
    lines, code = closing_lines(book, state.launch, SWEEP_STOP.signal_name)
    print("\n".join(lines), flush=True)
    return code


def closing_lines(book: dict, launch: str, stopped_by: str | None) -> tuple[list[str], int]:
    counts = ledger.counts(book)
    mine = [job for job in book["jobs"] if job.get("launch") == launch]
    mine_states = [ledger.state_now(job, book.get("sweep_dir")) for job in mine]
    left = {"pending", "running", "interrupted"} & counts.keys()
    verb = "finished" if not left else "stopped" if stopped_by or "interrupted" in mine_states else "not finished"
    total = ", ".join(f"{n} {state}" for state, n in counts.items())
    ran = f"this launch ran {len(mine)}" + (f": {_count(mine_states)}" if mine else "")
    sweep_dir = book["sweep_dir"]
    lines = [f"sweep {verb}: {len(book['jobs'])} jobs, {total} ({ran}); leaderboard: "
             f"{shell_command('python', '-m', 'cnnbench.report', sweep_dir)}; curves and HParams: "
             f"{shell_command('tensorboard', '--logdir', sweep_dir)}"]
    if left:
        lines.append(f"continue: {shell_command(*book['continue'])}")
    if stopped_by or "interrupted" in mine_states:
        return lines, 128 + signal_number(stopped_by or "SIGINT")
    return lines, 1 if counts.keys() & set(ledger.ENDED_BADLY) else 0


def _count(states: list[str]) -> str:
    return ", ".join(f"{states.count(s)} {s}" for s in ledger.SHOWN_ORDER if s in states)


class SweepControl(Callback):
    """conf/config.yaml's hydra.callbacks: the ledger, Ctrl-C and the closing lines of every multirun, and the resolver
    that names job folders (registered where Hydra makes them: in the launch, and in each worker process, which
    receives this callback pickled)."""

    def __init__(self) -> None:
        register_job_dir_resolver()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        register_job_dir_resolver()

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            open_launch(config)
        except ledger.OtherSweep as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(err.exit_code)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        code = close_launch()
        if code:
            sys.exit(code)
