"""Checks on a composed config before any work starts: types, ranges, choices and unknown keys, one-line errors.

Every message reads `<key>=<value> is not allowed: expected <what is allowed>`, or, for a key that slipped
in with `+key=value`, `<key> is not a config key (did you mean <nearest>?)`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from . import CONF_DIR
from .data import input_size
from .data.folder import complete_folder_config
from .data.sources import NATIVE_FORMATS, SOURCE_NAMES
from .errors import ConfigError
from .models import INIT_SCHEMES, build_model, list_models
from .models.build import model_options
from .runtime.devices import resolve_device
from .runtime.distributed import launched_by_torchrun


@dataclass(frozen=True)
class Rule:
    key: str
    allowed: str  # shown to the user: "an integer >= 1"
    check: Callable[[object], bool]
    optional: bool = False  # null allowed


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def int_at_least(low: int) -> Callable[[object], bool]:
    return lambda v: _is_int(v) and v >= low


def number_above(low: float) -> Callable[[object], bool]:
    return lambda v: _is_number(v) and v > low


def number_at_least(low: float) -> Callable[[object], bool]:
    return lambda v: _is_number(v) and v >= low


def number_in(low: float, high: float, *, low_open: bool = False, high_open: bool = True) -> Callable[[object], bool]:
    return lambda v: (_is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high))


def one_of(*choices) -> Callable[[object], bool]:
    return lambda v: isinstance(v, str) and v in choices


def is_bool(v) -> bool:
    return isinstance(v, bool)


def is_text(v) -> bool:
    return isinstance(v, str) and v.strip() != ""


def is_count_or_fraction(v) -> bool:
    return int_at_least(0)(v) or (isinstance(v, float) and 0 <= v < 1)


def is_betas(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(number_in(0, 1)(b) for b in v)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
TRUE_OR_FALSE = "true or false"

RULES = (
    Rule("seed", "an integer", _is_int),
    Rule("trainer.epochs", "an integer >= 1", int_at_least(1)),
    Rule("trainer.patience", "an integer >= 0, or null to disable", int_at_least(0), optional=True),
    Rule("trainer.max_steps_per_epoch", "an integer >= 1, or null for whole epochs", int_at_least(1), optional=True),
    Rule("trainer.label_smoothing", "a number in [0, 1)", number_in(0, 1)),
    Rule("trainer.grad_clip", "a number > 0, or null to disable", number_above(0), optional=True),
    Rule("trainer.device", "auto, cpu, cuda, cuda:N or mps", lambda v: isinstance(v, str) and
         bool(DEVICE_PATTERN.match(v))),
    Rule("trainer.progress_every", "an integer >= 1", int_at_least(1)),
    Rule("trainer.channels_last", TRUE_OR_FALSE, is_bool),
    Rule("trainer.amp", "auto, true or false", lambda v: v == "auto" or isinstance(v, bool)),
    Rule("trainer.resume", "null, auto or the path of a run directory or checkpoint", is_text, optional=True),
    Rule("trainer.deterministic", TRUE_OR_FALSE, is_bool),
    Rule("trainer.devices", "an integer >= 1 (processes of a data-parallel run)", int_at_least(1)),
    Rule("trainer.sync_bn", TRUE_OR_FALSE, is_bool),
    Rule("trainer.compile", f"true, false or a torch.compile mode ({', '.join(COMPILE_MODES)})",
         lambda v: isinstance(v, bool) or one_of(*COMPILE_MODES)(v)),
    Rule("model.name", f"one of {', '.join(list_models())}", one_of(*list_models())),
    Rule("model.init", f"one of {', '.join(INIT_SCHEMES)}", one_of(*INIT_SCHEMES)),
    Rule("model.stem", "one of small, imagenet", one_of("small", "imagenet")),
    Rule("model.width_div", "an integer >= 1 that divides 64", lambda v: int_at_least(1)(v) and 64 % v == 0),
    Rule("model.n_hidden", "an integer >= 1", int_at_least(1)),
    Rule("model.n_feature", "an integer >= 1", int_at_least(1)),
    Rule("data.name", f"one of {', '.join(SOURCE_NAMES)}", one_of(*SOURCE_NAMES)),
    Rule("data.root", "a folder path", is_text),
    Rule("data.download", TRUE_OR_FALSE, is_bool),
    Rule("data.image_size", "an integer >= 1", int_at_least(1)),
    Rule("data.in_chans", "an integer >= 1", int_at_least(1)),
    Rule("data.num_classes", "an integer >= 2", int_at_least(2)),
    Rule("data.batch_size", "an integer >= 1", int_at_least(1)),
    Rule("data.eval_batch_size", "an integer >= 1", int_at_least(1)),
    Rule("data.val_split", "a count >= 0 or a fraction in (0, 1)", is_count_or_fraction),
    Rule("data.split_seed", "an integer >= 0", int_at_least(0)),
    Rule("data.resize", "an integer >= 1, or null to keep the native size", int_at_least(1), optional=True),
    Rule("data.augment", TRUE_OR_FALSE, is_bool),
    Rule("data.permute_pixels", TRUE_OR_FALSE, is_bool),
    Rule("data.normalize", TRUE_OR_FALSE, is_bool),
    Rule("data.num_train", "an integer >= 1", int_at_least(1)),
    Rule("data.num_test", "an integer >= 1", int_at_least(1)),
    Rule("data.noise", "a number >= 0", number_at_least(0)),
    Rule("data.seed", "an integer", _is_int),
    Rule("data.num_workers", "auto or an integer >= 0", lambda v: v == "auto" or int_at_least(0)(v)),
    Rule("optimizer.lr", "a number > 0", number_above(0)),
    Rule("optimizer.momentum", "a number in [0, 1)", number_in(0, 1)),
    Rule("optimizer.weight_decay", "a number >= 0", number_at_least(0)),
    Rule("optimizer.nesterov", TRUE_OR_FALSE, is_bool),
    Rule("optimizer.betas", "two numbers in [0, 1), e.g. [0.9,0.999]", is_betas),
    Rule("scheduler.warmup_epochs", "a number >= 0", number_at_least(0)),
    Rule("scheduler.min_lr", "a number >= 0", number_at_least(0)),
    Rule("scheduler.step_epochs", "an integer >= 1", int_at_least(1)),
    Rule("scheduler.gamma", "a number in (0, 1]", number_in(0, 1, low_open=True, high_open=False)),
    Rule("scheduler.pct_start", "a number in (0, 1)", number_in(0, 1, low_open=True)),
    Rule("scheduler.div_factor", "a number > 0", number_above(0)),
    Rule("scheduler.final_div_factor", "a number > 0", number_above(0)),
    Rule("inspect.format", "one of table, json", one_of("table", "json")),
)
SECTIONS = ("model", "data", "optimizer", "scheduler", "trainer")


FILLED_FROM_FOLDER = ("data.in_chans", "data.num_classes")  # null in image_folder.yaml until the folder is read


def validate_config(cfg: DictConfig, root: str = "config") -> None:
    """Raise ConfigError for the first value that breaks a rule; keys a config lacks are skipped.

    `root` is the config `cfg` was composed from: `config` (training, evaluation) or `inspect`, which only
    builds the model and so needs no data.mean/std. data=image_folder reads its folder first, once the other
    keys pass: that fills data.in_chans, data.num_classes and a null data.mean/std, which the rules then
    check like any other value."""
    normalized = root == "config"
    if OmegaConf.select(cfg, "data.name") == "image_folder":
        _check_rules(cfg, [rule for rule in RULES if rule.key not in FILLED_FROM_FOLDER])
        _check_known_keys(cfg, root)
        complete_folder_config(cfg.data, normalization=normalized)
    _check_rules(cfg, RULES)
    _check_known_keys(cfg, root)
    _check_nesterov(cfg.optimizer)
    _check_data_format(cfg.data)
    if normalized:
        _check_normalization(cfg.data)
    _check_model_fits_input(cfg)
    _check_sync_bn(cfg.trainer, resolve_device(cfg.trainer.device))


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


# --- unknown keys: what the config files define, plus the model factory's keyword arguments -------------

@lru_cache
def _option_files(group: str) -> tuple[dict, ...]:
    return tuple(OmegaConf.to_container(OmegaConf.load(path))
                 for path in sorted(Path(CONF_DIR, group).glob("*.yaml")))


@lru_cache
def _root_config(root: str = "config") -> dict:
    return OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR, f"{root}.yaml")))


def known_keys(cfg: DictConfig, section: str) -> list[str]:
    """Keys `cfg.<section>` may hold: those of the option chosen (matched by name or _target_), else of any."""
    if section == "trainer":
        return list(_root_config()["trainer"])
    if section == "model":
        return ["name", "init", *model_options(cfg.model.name)]
    identity = "name" if section == "data" else "_target_"
    options = _option_files(section)
    chosen = [o for o in options if o.get(identity) == cfg[section].get(identity)] or options
    return list(dict.fromkeys(key for option in chosen for key in option))


def _top_level_keys(root: str) -> list[str]:
    groups = sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir())
    keys = [*_root_config(), *_root_config(root), *groups]
    return [key for key in dict.fromkeys(keys) if key not in ("defaults", "hydra")]


def _check_known_keys(cfg: DictConfig, root: str) -> None:
    _reject_unknown([str(k) for k in cfg if k != "hydra"], _top_level_keys(root), parent="")
    for section in SECTIONS:
        if isinstance(cfg.get(section), DictConfig):
            _reject_unknown([str(k) for k in cfg[section]], known_keys(cfg, section), parent=section)


def _reject_unknown(keys: list[str], known: list[str], parent: str) -> None:
    prefix = f"{parent}." if parent else ""
    for key in keys:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f" (did you mean {prefix}{hint[0]}?)" if hint else ""
            where = f"keys under {parent}" if parent else "top-level keys"
            raise ConfigError(f"{prefix}{key} is not a config key{suggestion}; {where}: {', '.join(known)}")


# --- rules that involve more than one key ----------------------------------------------------------------

def _check_nesterov(optimizer_cfg: DictConfig) -> None:
    # torch.optim.SGD raises for Nesterov momentum without momentum
    if optimizer_cfg.get("nesterov") and not optimizer_cfg.get("momentum"):
        raise not_allowed("optimizer.nesterov", True, "optimizer.momentum > 0 with it (got optimizer.momentum="
                                                      f"{shown(optimizer_cfg.get('momentum'))})")


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


def _check_model_fits_input(cfg: DictConfig) -> None:
    """Build the model on the meta device (no memory, no init): too-small inputs and bad options surface here."""
    model_cfg, size = {**_plain(cfg.model), "init": "default"}, input_size(cfg.data)
    try:
        with torch.device("meta"):
            build_model(model_cfg, num_classes=cfg.data.num_classes, in_chans=cfg.data.in_chans, input_size=size)
    except ConfigError:
        raise
    except Exception as err:  # a layer that refuses its size: torch's RuntimeError and the like
        raise ConfigError(f"model={cfg.model.name} cannot take {cfg.data.in_chans}x{size}x{size} inputs "
                          f"({str(err).splitlines()[0]}); change data.resize or the model's options") from err


def _check_sync_bn(trainer_cfg: DictConfig, device: torch.device) -> None:
    parallel = trainer_cfg.get("devices", 1) > 1 or launched_by_torchrun()
    if trainer_cfg.get("sync_bn") and parallel and device.type != "cuda":
        raise ConfigError("trainer.sync_bn=true is not allowed on the CPU: torch's SyncBatchNorm runs on CUDA only "
                          "(with false each process normalises with the statistics of its own part of the batch)")
