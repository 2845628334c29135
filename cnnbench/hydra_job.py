"""Hydra, read once: what a run needs of the Hydra job it runs in, as a plain `Job` (runtime/job.py) that the
training command hands down. Nothing under `engine/`, `runtime/`, `data/` or `models/` reads Hydra's globals.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from .runtime.job import Job
from .runtime.job_labels import swept_keys
from .runtime.sweeps import parallel_jobs


def read_job() -> Job:
    """The running Hydra job as a `Job`; the empty `Job()` outside a Hydra app."""
    if not HydraConfig.initialized():
        return Job()
    hydra_cfg = HydraConfig.get()
    hydra = OmegaConf.to_container(hydra_cfg, resolve=False, enum_to_str=True)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    sweeper = hydra.get("sweeper") or {}
    sweep_dir = Path(str(hydra_cfg.sweep.dir)).absolute() if in_sweep else None
    folder_setting = (hydra["sweep"] if in_sweep else hydra["run"]).get("dir")
    return Job(
        overrides=tuple(hydra["overrides"]["task"]),  # as typed: ${...} unresolved
        choices={str(k): str(v) for k, v in hydra["runtime"]["choices"].items() if v is not None and "/" not in str(k)},
        swept=swept_keys(sweeper.get("params") or {}, sweep_dir / "multirun.yaml") if in_sweep else {},
        in_sweep=in_sweep,
        number=int(hydra_cfg.job.num) if in_sweep else None,
        sweep_dir=sweep_dir,
        generated_dir=isinstance(folder_setting, str) and "${now:" in folder_setting,
        parallel_jobs=parallel_jobs(in_sweep, _resolved(hydra_cfg.launcher), _resolved(hydra_cfg.sweeper)),
        hydra=hydra,
        from_command_line=True,
    )


def _resolved(node) -> dict:
    try:
        return OmegaConf.to_container(node, resolve=True) or {}
    except Exception:  # a setting only the plugin can resolve: it is not one the thread count needs
        return OmegaConf.to_container(node, resolve=False) or {}
