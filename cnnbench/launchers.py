"""How many sweep jobs share this machine, and so how many CPU threads each of their processes should take.

`hydra/launcher=joblib` runs `hydra.launcher.n_jobs` jobs at once in worker processes on this machine; the basic
launcher runs one job at a time, and `hydra/launcher=slurm` gives every job an allocation of its own. A job that
assumed the machine to itself would start a thread per core in each of N jobs, N times too many.

These launchers and the Optuna sweeper (`hparams_search=<preset>`) are Hydra plugins, installed with cnnbench's
extras; `missing_plugin` names the extra to install when a command line picks one that is not there.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


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


def hydra_config() -> DictConfig | None:
    """The running job's `hydra` node; None outside a Hydra app."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which taskset and SLURM narrow), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parallel_jobs() -> int:
    """Jobs of the current sweep that run at the same time on this machine (1 outside a joblib sweep)."""
    hydra_cfg = hydra_config()
    if hydra_cfg is None or hydra_cfg.mode != RunMode.MULTIRUN or hydra_cfg.launcher.get("_target_") != JOBLIB_LAUNCHER:
        return 1
    workers = joblib_workers(hydra_cfg.launcher.n_jobs)
    batch = _batch_limit(hydra_cfg.sweeper)
    return min(workers, batch) if batch else workers


def joblib_workers(n_jobs: int | None) -> int:
    """joblib's reading of n_jobs: -1 = every CPU, -2 = all but one, ...; None or 0 = 1."""
    if not n_jobs:
        return 1
    if n_jobs > 0:
        return n_jobs
    from joblib import cpu_count  # joblib's own count: affinity and cgroup CPU quotas

    return max(cpu_count() + 1 + n_jobs, 1)


def _batch_limit(sweeper: DictConfig) -> int | None:
    """The sweeper hands the launcher at most this many jobs at once: Optuna's n_jobs, the basic max_batch_size."""
    limit = sweeper.get("n_jobs") or sweeper.get("max_batch_size")
    return limit if isinstance(limit, int) and limit > 0 else None


def threads_per_process(processes_per_job: int = 1) -> int:
    """CPU threads for each process of a job: the usable cores split between all processes of all parallel jobs."""
    return max(1, usable_cores() // (parallel_jobs() * max(1, processes_per_job)))


def plugin_for(key: str, value: str) -> Plugin | None:
    if key == "hparams_search":
        return OPTUNA if value not in ("", "null") else None
    return PLUGIN_CHOICES.get(key, {}).get(value)


def plugin_installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def missing_plugin(overrides: list[str]) -> str | None:
    """`hydra/launcher=joblib needs the hydra-joblib-launcher plugin: pip install ...` for the first such choice."""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        plugin = plugin_for(key, value)
        if plugin and not plugin_installed(plugin.module):
            return f'{override} needs the {plugin.package} plugin: pip install "cnnbench[{plugin.extra}]"'
    return None
