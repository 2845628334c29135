"""Sweeps: which job this is, how many CPU threads each of its processes takes, the plugins a sweep may need
(the sweep's ledger and closing lines: `sweep_control`; what a job is called and shows in TensorBoard: `job_labels`).

`hydra/launcher=joblib` runs `hydra.launcher.n_jobs` jobs at once in worker processes on this machine; the basic
launcher runs one job at a time, and `hydra/launcher=slurm` gives every job an allocation of its own. A job that
assumed the machine to itself would start a thread per core in each of N jobs, N times too many. These launchers
and the Optuna sweeper (`hparams_search=<preset>`) are Hydra plugins, installed with cnnbench's extras.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from .distributed import THREADS_VARIABLE
from .overrides import Override, parse_overrides

log = logging.getLogger(__name__)

JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
# What a failed job returns to the sweeper: a maximising sweeper ranks it last and goes on (Optuna refuses NaN).
FAILED_JOB_VALUE = float("-inf")


@dataclass(frozen=True)
class Plugin:
    module: str  # what Hydra imports
    package: str  # what pip installs
    extra: str  # the cnnbench extra that brings it


JOBLIB = Plugin("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "joblib")
SUBMITIT = Plugin("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm")
OPTUNA = Plugin("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper", "optuna")
# a group choice on the command line -> the plugin it needs; any hparams_search preset needs the Optuna sweeper
PLUGIN_CHOICES = {
    "hydra/launcher": {"joblib": JOBLIB, "slurm": SUBMITIT, "submitit_slurm": SUBMITIT, "submitit_local": SUBMITIT},
    "hydra/sweeper": {"optuna": OPTUNA},
}


# --- the sweep -----------------------------------------------------------------------------------------------

def sweep_size(multirun_yaml: Path) -> int | None:
    """Number of jobs of a basic-sweeper sweep, from the command line Hydra saved in multirun.yaml."""
    try:
        sizes = {}
        for override in sweep_overrides(multirun_yaml):
            if override.open_sweep:
                return None
            sizes[override.key] = len(override.sweep) if override.sweep else 1
        return math.prod(sizes.values())
    except Exception:  # another sweeper, a missing file: the size is not known up front
        log.debug("sweep size unknown", exc_info=True)
        return None


def sweep_overrides(multirun_yaml: Path) -> list[Override]:
    """The sweep's overrides as multirun.yaml saved them: the sweeper's params, then the command line (which wins)."""
    saved = OmegaConf.load(multirun_yaml).hydra
    params = saved.sweeper.get("params") or {}
    lines = [f"{key}={value}" for key, value in params.items()] + list(saved.overrides.task)
    return list({o.key: o for o in parse_overrides(lines)}.values())


# --- cores per process ---------------------------------------------------------------------------------------

def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which taskset and SLURM narrow), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parallel_jobs(in_sweep: bool, launcher: dict, sweeper: dict) -> int:
    """Jobs of a sweep that run at the same time on this machine, from Hydra's launcher and sweeper settings (1
    outside a joblib sweep)."""
    if not in_sweep or launcher.get("_target_") != JOBLIB_LAUNCHER:
        return 1
    workers = joblib_workers(launcher.get("n_jobs"))
    batch = _batch_limit(sweeper)
    return min(workers, batch) if batch else workers


def joblib_workers(n_jobs: int | None) -> int:
    """joblib's reading of n_jobs: -1 = every CPU, -2 = all but one, ...; None or 0 = 1."""
    if not n_jobs:
        return 1
    if n_jobs > 0:
        return n_jobs
    from joblib import cpu_count  # joblib's own count: affinity and cgroup CPU quotas

    return max(cpu_count() + 1 + n_jobs, 1)


def _batch_limit(sweeper: dict) -> int | None:
    """The sweeper hands the launcher at most this many jobs at once: Optuna's n_jobs, the basic max_batch_size."""
    limit = sweeper.get("n_jobs") or sweeper.get("max_batch_size")
    return limit if isinstance(limit, int) and limit > 0 else None


def threads_per_process(parallel_jobs: int = 1, processes_per_job: int = 1) -> int:
    """CPU threads for each process of a job: the usable cores split between all processes of all parallel jobs."""
    return max(1, usable_cores() // (parallel_jobs * max(1, processes_per_job)))


def threads_for(on_cpu: bool, devices: int, parallel_jobs: int = 1) -> int | None:
    """CPU threads per process when processes or parallel sweep jobs share this machine; None = torch's default.

    The launching process decides (it knows the sweep); the ranks it spawns get the number in the environment.
    """
    if THREADS_VARIABLE in os.environ:
        return int(os.environ[THREADS_VARIABLE])
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", devices)) if on_cpu else 1
    if processes * parallel_jobs == 1:
        return None
    return threads_per_process(parallel_jobs, processes)


# --- plugins ---------------------------------------------------------------------------------------------------

def plugin_for(override: Override) -> Plugin | None:
    if override.key == "hparams_search":
        return OPTUNA if override.value not in (None, "", "null") else None
    return PLUGIN_CHOICES.get(override.key, {}).get(override.value)


def plugin_installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def missing_plugin(overrides: list[Override]) -> str | None:
    """`hydra/launcher=joblib needs the hydra-joblib-launcher plugin: pip install ...` for the first such choice."""
    for override in overrides:
        plugin = plugin_for(override)
        if plugin and not plugin_installed(plugin.module):
            return f'{override.text} needs the {plugin.package} plugin: pip install "cnnbench[{plugin.extra}]"'
    return None
