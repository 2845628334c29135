"""What a sweep job is called and what TensorBoard's HParams tab shows of it: its directory's name holds the values
of the keys the sweep varies (`3_lr-0.05_batch_size-128`), so that run names say what differs; its
HParams row has the same columns in every job, the swept ones first.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

from omegaconf import OmegaConf

from .overrides import Override, get_dotted, parse_overrides, settings_of
from .sweeps import sweep_overrides

log = logging.getLogger(__name__)
RESOLVER = "cnnbench.job_dir"  # conf/config.yaml: hydra.sweep.subdir


def job_dir_name(num, overrides, sweep_dir, params) -> str:
    """A sweep job's directory name from its Hydra settings (the resolver behind hydra.sweep.subdir, given
    hydra.job.num, hydra.overrides.task, hydra.sweep.dir and the sweeper's params)."""
    plain = OmegaConf.to_container(overrides) if OmegaConf.is_config(overrides) else list(overrides or [])
    params = OmegaConf.to_container(params) if OmegaConf.is_config(params) else (params or {})
    return job_folder_name(int(num), plain, swept_keys(params, Path(str(sweep_dir)) / "multirun.yaml"))


def register_job_dir_resolver() -> None:
    """Called where Hydra is about to name job folders (the sweep's callback, in the launch and in each worker)."""
    OmegaConf.register_new_resolver(RESOLVER, job_dir_name, replace=True)


def job_folder_name(num: int, overrides: list[str], swept: dict) -> str:
    """A sweep job's directory: its number, then the keys the sweep varies and their values
    (`3_lr-0.05_batch_size-128`), so that TensorBoard's run names say what differs. A key is named by its last
    part unless two swept keys share it; the name holds only letters, digits and `.`, `_`, `+`, `-` (no `=`, `,`
    or spaces, so that it can be pasted into any command), long numbers are rounded to 4 digits, and it stays
    under 120 characters."""
    parsed = [Override.from_text(line) for line in overrides]
    shown = [o for o in parsed if (o.key in swept if swept else o.key not in NOT_IN_NAME) and not o.is_hydra]
    leaves = [o.key.rsplit(".", 1)[-1].rsplit("/", 1)[-1] for o in shown]
    parts = []
    for override, leaf in zip(shown, leaves, strict=True):
        label = leaf if leaves.count(leaf) == 1 else override.key
        parts.append(f"{label}-{_short_value(override.value)}")
    text = UNSAFE_IN_NAME.sub("_", "_".join(parts))
    name = f"{num}_{text}" if text else str(num)
    return name if len(name) <= MAX_NAME else name[:MAX_NAME]


def _short_value(value: str | None) -> str:
    text = "" if value is None else str(value).strip("'\"")
    if len(text) > 8 and _is_number(text):
        return f"{float(text):.4g}"
    return text


UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._+\-]")
MAX_NAME = 120
NOT_IN_NAME = ("trainer.resume", "data.root", "data.download", "trainer.device", "console.config")


def swept_keys(params: dict, multirun_yaml: Path) -> dict[str, tuple[str, ...] | None]:
    """The keys a sweep varies and their values (None: a range only the sweeper expands, as Optuna's search space),
    from the sweeper's `params` and the command line saved in multirun.yaml (the basic sweeper writes it before
    the first job)."""
    try:
        overrides = parse_overrides([f"{key}={value}" for key, value in params.items()])
        if multirun_yaml.is_file():
            overrides += sweep_overrides(multirun_yaml)
        return {o.key: o.sweep for o in overrides if o.sweep or o.open_sweep}
    except Exception:
        log.debug("swept keys unknown", exc_info=True)
        return {}


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def hparams(config: dict, overrides: list[str], choices: dict | None = None,
            swept: dict[str, tuple[str, ...] | None] | None = None) -> list[tuple[str, float | int | str | bool, bool]]:
    """What TensorBoard's HParams tab shows of a run, as (name, value, swept): the main knobs and every command-line
    override, the same names in every job of a sweep. A group choice (`experiment=...`) shows the name chosen; a
    swept key whose values are not all numbers shows as text in every job, so the column has one type."""
    choices, swept = choices or {}, swept or {}
    values = {
        "model": config["model"]["name"], "data": config["data"]["name"],
        "optimizer": str(config["optimizer"]["_target_"]).rsplit(".", 1)[-1],
        "optimizer.lr": config["optimizer"]["lr"], "data.batch_size": config["data"]["batch_size"],
        "trainer.epochs": config["trainer"]["epochs"], "seed": config["seed"],
    }
    for key, text in settings_of(overrides).items():
        if key in values:
            continue
        value = get_dotted(config, key)
        if isinstance(value, dict) or value is None and key in choices:
            value = choices.get(key, text)
        values[key] = value if isinstance(value, int | float | str | bool) else str(value)
    rows = []
    for key, value in values.items():
        sweep = swept.get(key)
        if key in swept and not isinstance(value, bool) and (sweep is None or not all(map(_is_number, sweep))):
            value = str(value) if sweep is not None else value
        rows.append((key, value, key in swept))
    return sorted(rows, key=lambda row: not row[2])
