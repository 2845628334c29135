"""Checks on a composed config before any work starts: types, ranges, choices and unknown keys, one-line errors.

Every message reads `<key>=<value> is not allowed: expected <what is allowed>`, or, for a key that slipped
in with `+key=value`, `<key> is not a config key (did you mean <nearest>?)`. Each key is checked once, here
(`rules.py` says what each allows, `keys.py` which keys exist).
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .. import CONF_DIR
from ..data.sources import NATIVE_FORMATS
from ..engine.schedulers import SCHEDULES
from ..errors import ConfigError
from ..runtime.devices import resolve_device
from ..runtime.distributed import launched_by_torchrun
from ..runtime.sweeps import usable_cores
from .checks import check_normalization, check_rules, nondeterministic_on_cuda, not_allowed, shown
from .keys import check_known_keys, load_yaml
from .model import build_model
from .prepare import data_settings, prepare_config
from .rules import FILLED_FROM_FOLDER, RULES, SECTIONS

__all__ = ["MOVED_KEYS", "build_model", "data_settings", "load_yaml", "nondeterministic_on_cuda", "not_allowed",
           "prepare_config", "shown", "upgraded", "validate_config"]

# Keys that moved: a saved config (last.pt, best.pt) of an earlier version is read with them in their new place.
MOVED_KEYS = {"optimizer.decay_norm_and_bias": "trainer.decay_norm_and_bias"}


def upgraded(config: dict) -> dict:
    """A saved config (plain containers) with the keys of `MOVED_KEYS` in their new place (a copy)."""
    import copy

    from ..runtime.overrides import get_dotted, pop_dotted, set_dotted

    config = copy.deepcopy(config)
    for old, new in MOVED_KEYS.items():
        value = get_dotted(config, old, default=_ABSENT)
        if value is not _ABSENT:
            pop_dotted(config, old)
            if get_dotted(config, new, default=_ABSENT) is _ABSENT:
                set_dotted(config, new, value)
    return config


_ABSENT = object()




def validate_config(cfg: DictConfig, root: str = "config") -> None:
    """Raise ConfigError for the first value that breaks a rule; keys a config lacks are skipped. Only checks: no
    file is read and no model is built (that is `prepare_config`'s, config/prepare.py), and `cfg` is left as it is.

    `root` is the config `cfg` was composed from: `config` (training, evaluation) or `inspect`, which only
    builds the model and so needs no data.mean/std. For data=image_folder, data.in_chans, data.num_classes and
    data.mean/std may be null until the folder is read."""
    _check_sections(cfg, root)
    from_folder = OmegaConf.select(cfg, "data.name") == "image_folder"
    check_rules(cfg, [rule for rule in RULES if not (from_folder and rule.key in FILLED_FROM_FOLDER
                                                      and OmegaConf.select(cfg, rule.key) is None)])
    check_known_keys(cfg, root)
    _check_targets(cfg)
    _check_nesterov(cfg.optimizer)
    _check_target(cfg.trainer)
    _check_data_format(cfg.data)
    if root == "config" and not (from_folder and None in (cfg.data.get("mean"), cfg.data.get("std"),
                                                          cfg.data.get("in_chans"))):
        check_normalization(cfg.data)
    device = resolve_device(cfg.trainer.device)
    _check_sync_bn(cfg.trainer, device)
    _check_numbered_gpu(cfg, device)
    _check_device_count(cfg.trainer, device)


def _check_sections(cfg: DictConfig, root: str) -> None:
    """Every group a run needs is there (`~model` on the command line removes one)."""
    needed = ("model", "data") if root == "inspect" else SECTIONS
    for section in needed:
        if not isinstance(cfg.get(section), DictConfig):
            options = sorted(p.stem for p in Path(CONF_DIR, section).glob("*.yaml"))
            choose = f"choose one with {section}=<name> ({', '.join(options)})" if options else f"set {section}.*"
            raise ConfigError(f"{section} is missing from the config (removed with ~{section}?); {choose}")




def _check_targets(cfg: DictConfig) -> None:
    """What `instantiate` will build: an optimizer class and one of cnnbench's schedules, nothing else (Hydra
    refuses `os.system` and the like only once the run is under way)."""
    optimizer = OmegaConf.select(cfg, "optimizer._target_", default=None)
    if not _is_optimizer_class(optimizer):
        raise not_allowed("optimizer._target_", optimizer, "the import path of a torch.optim.Optimizer class "
                                                         "(torch.optim.SGD, torch.optim.AdamW, ...)")
    scheduler = OmegaConf.select(cfg, "scheduler._target_", default=None)
    allowed = [f"cnnbench.engine.schedulers.{name}" for name in SCHEDULES]
    if scheduler not in allowed:
        raise not_allowed("scheduler._target_", scheduler, f"one of {', '.join(allowed)} (choose with scheduler=)")


def _is_optimizer_class(target) -> bool:
    import importlib

    if not isinstance(target, str) or "." not in target:
        return False
    module, _, name = target.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError, TypeError):
        return False
    return isinstance(found, type) and issubclass(found, torch.optim.Optimizer)


def _check_nesterov(optimizer_cfg: DictConfig) -> None:
    # torch.optim.SGD raises for Nesterov momentum without momentum
    if optimizer_cfg.get("nesterov") and not optimizer_cfg.get("momentum"):
        raise not_allowed("optimizer.nesterov", True, "optimizer.momentum > 0 with it (got optimizer.momentum="
                                                      f"{shown(optimizer_cfg.get('momentum'))})")


def _check_target(trainer_cfg: DictConfig) -> None:
    if trainer_cfg.get("stop_at_target") and trainer_cfg.get("target_acc") is None:
        raise not_allowed("trainer.stop_at_target", True, "trainer.target_acc set with it (a val/acc to stop at)")


def _check_data_format(data_cfg: DictConfig) -> None:
    """A dataset read from files has a fixed channel count, image size and class count."""
    native = NATIVE_FORMATS.get(data_cfg.name)
    if native is None:
        return
    for key, expected in zip(("in_chans", "image_size", "num_classes"), native, strict=True):
        if data_cfg.get(key, expected) != expected:
            hint = " (its native size; data.resize changes the size the model sees)" if key == "image_size" else ""
            raise not_allowed(f"data.{key}", data_cfg[key], f"{expected} for data={data_cfg.name}{hint}")


def _check_device_count(trainer_cfg: DictConfig, device: torch.device) -> None:
    """One process per GPU, or per usable CPU core: more would only wait on each other (and may not start)."""
    devices = trainer_cfg.get("devices", 1)
    if devices == 1 or launched_by_torchrun():
        return
    if device.type == "cuda":
        available, what = torch.cuda.device_count(), "CUDA device(s)"
    else:
        available, what = usable_cores(), "CPU core(s) this process may use"
    if devices > available:
        raise not_allowed("trainer.devices", devices, f"at most {available} on {device.type}: this machine has "
                                                      f"{available} {what}, one per process")


def _check_sync_bn(trainer_cfg: DictConfig, device: torch.device) -> None:
    parallel = trainer_cfg.get("devices", 1) > 1 or launched_by_torchrun()
    if trainer_cfg.get("sync_bn") and parallel and device.type != "cuda":
        raise ConfigError("trainer.sync_bn=true is not allowed on the CPU: torch's SyncBatchNorm runs on CUDA only "
                          "(with false each process normalises with the statistics of its own part of the batch)")


def _check_numbered_gpu(cfg: DictConfig, device: torch.device) -> None:
    if device.type == "cuda" and device.index is not None and (cfg.trainer.get("devices", 1) > 1
                                                                or launched_by_torchrun()):
        raise not_allowed("trainer.device", cfg.trainer.device,
                          "cuda with several processes: each takes the GPU of its local rank (choose them with "
                          "CUDA_VISIBLE_DEVICES)")
