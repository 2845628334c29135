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
from ..data.folder import complete_folder_config
from ..data.sources import NATIVE_FORMATS
from ..errors import ConfigError
from ..runtime.devices import resolve_device
from ..runtime.distributed import launched_by_torchrun
from ..runtime.sweeps import usable_cores
from .keys import check_known_keys, load_yaml
from .model import build_model
from .rules import FILLED_FROM_FOLDER, RULES, SECTIONS, number_above, number_in

__all__ = ["MOVED_KEYS", "build_model", "load_yaml", "not_allowed", "shown", "upgraded", "validate_config"]

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
    """Raise ConfigError for the first value that breaks a rule; keys a config lacks are skipped.

    `root` is the config `cfg` was composed from: `config` (training, evaluation) or `inspect`, which only
    builds the model and so needs no data.mean/std. data=image_folder reads its folder first, once the other
    keys pass: that fills data.in_chans, data.num_classes and a null data.mean/std, which the rules then
    check like any other value."""
    normalized = root == "config"
    _check_sections(cfg, root)
    if OmegaConf.select(cfg, "data.name") == "image_folder":
        _check_rules(cfg, [rule for rule in RULES if rule.key not in FILLED_FROM_FOLDER])
        check_known_keys(cfg, root)
        complete_folder_config(cfg.data, normalization=normalized)
    _check_rules(cfg, RULES)
    check_known_keys(cfg, root)
    _check_targets(cfg)
    _check_nesterov(cfg.optimizer)
    _check_target(cfg.trainer)
    _check_data_format(cfg.data)
    if normalized:
        _check_normalization(cfg.data)
    model = _check_model_fits_input(cfg)
    device = resolve_device(cfg.trainer.device)
    _check_sync_bn(cfg.trainer, device)
    _check_cuda_choices(cfg, device, model)
    _check_device_count(cfg.trainer, device)


def _check_sections(cfg: DictConfig, root: str) -> None:
    """Every group a run needs is there (`~model` on the command line removes one)."""
    needed = ("model", "data") if root == "inspect" else SECTIONS
    for section in needed:
        if not isinstance(cfg.get(section), DictConfig):
            options = sorted(p.stem for p in Path(CONF_DIR, section).glob("*.yaml"))
            choose = f"choose one with {section}=<name> ({', '.join(options)})" if options else f"set {section}.*"
            raise ConfigError(f"{section} is missing from the config (removed with ~{section}?); {choose}")


def _check_rules(cfg: DictConfig, rules) -> None:
    for rule in rules:
        value = _plain(OmegaConf.select(cfg, rule.key, default="<absent>"))
        if value == "<absent>" or (value is None and rule.optional):
            continue
        if not rule.check(value):
            raise not_allowed(rule.key, value, rule.allowed)


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def shown(value) -> str:
    """A value as one would type it in an override: null, true, [0.9,1.2], plain strings."""
    if value is None or isinstance(value, bool):
        return str(value).lower() if value is not None else "null"
    if isinstance(value, list):
        return "[" + ",".join(shown(v) for v in value) + "]"
    return str(value)


def not_allowed(key: str, value, expected: str) -> ConfigError:
    return ConfigError(f"{key}={shown(value)} is not allowed: expected {expected}")


# --- rules that involve more than one key ----------------------------------------------------------------

SCHEDULES = ("constant", "cosine", "step", "onecycle")  # the functions of cnnbench.engine.schedulers


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


def _check_normalization(data_cfg: DictConfig) -> None:
    channels = data_cfg.in_chans
    for key, per_value, allowed in (("mean", number_in(0, 1, high_open=False), "in [0, 1]"),
                                    ("std", number_above(0), "> 0")):
        values = _plain(data_cfg.get(key))
        if not isinstance(values, list) or len(values) != channels or not all(per_value(v) for v in values):
            raise not_allowed(f"data.{key}", values, f"{channels} number(s) {allowed}, one per channel "
                                                     f"(data.in_chans={channels})")


def _check_model_fits_input(cfg: DictConfig) -> torch.nn.Module:
    """Build the model on the meta device (no memory, no init): too-small inputs and bad options surface here."""
    with torch.device("meta"):
        return build_model(cfg, init="default")


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


def _check_cuda_choices(cfg: DictConfig, device: torch.device, model: torch.nn.Module) -> None:
    """Choices that only a GPU run can get wrong: a numbered GPU for several processes, a layer without a
    deterministic CUDA backward in a deterministic run."""
    if device.type != "cuda":
        return
    if device.index is not None and (cfg.trainer.get("devices", 1) > 1 or launched_by_torchrun()):
        raise not_allowed("trainer.device", cfg.trainer.device,
                          "cuda with several processes: each takes the GPU of its local rank (choose them with "
                          "CUDA_VISIBLE_DEVICES)")
    if cfg.trainer.get("deterministic"):
        layers = nondeterministic_on_cuda(model)
        if layers:
            raise ConfigError(f"trainer.deterministic=true is not allowed with model={cfg.model.name} on CUDA: its "
                              f"{layers[0]} has no deterministic CUDA backward (set trainer.deterministic=false, "
                              f"or train on the CPU)")


def nondeterministic_on_cuda(model: torch.nn.Module) -> list[str]:
    """Layers whose CUDA backward has no deterministic implementation: adaptive average pooling to more than 1x1
    (to 1x1 PyTorch takes a mean, which has one)."""
    found = []
    for name, layer in model.named_modules():
        if isinstance(layer, torch.nn.AdaptiveAvgPool2d):
            size = layer.output_size if isinstance(layer.output_size, tuple) else (layer.output_size,) * 2
            if tuple(size) != (1, 1):
                found.append(f"{name} = AdaptiveAvgPool2d({layer.output_size})")
    return found
