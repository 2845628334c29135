"""Checks on a composed config before any work starts: types, ranges and choices, one-line errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf

from .data import SOURCE_NAMES
from .errors import ConfigError
from .models import INIT_SCHEMES, list_models


@dataclass(frozen=True)
class Rule:
    key: str
    allowed: str  # shown to the user: "an integer >= 1"
    check: Callable[[object], bool]
    optional: bool = False  # null allowed


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def int_at_least(low: int) -> Callable[[object], bool]:
    return lambda v: _is_int(v) and v >= low


def number_above(low: float) -> Callable[[object], bool]:
    return lambda v: _is_number(v) and v > low


def number_at_least(low: float) -> Callable[[object], bool]:
    return lambda v: _is_number(v) and v >= low


def one_of(*choices) -> Callable[[object], bool]:
    return lambda v: v in choices


def is_bool(v) -> bool:
    return isinstance(v, bool)


DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

RULES = (
    Rule("seed", "an integer", _is_int),
    Rule("trainer.epochs", "an integer >= 1", int_at_least(1)),
    Rule("trainer.patience", "an integer >= 0, or null to disable", int_at_least(0), optional=True),
    Rule("trainer.max_steps_per_epoch", "an integer >= 1, or null for whole epochs", int_at_least(1),
         optional=True),
    Rule("trainer.label_smoothing", "a number in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1),
    Rule("trainer.grad_clip", "a number > 0, or null to disable", number_above(0), optional=True),
    Rule("trainer.device", "auto, cpu, cuda, cuda:N or mps", lambda v: isinstance(v, str) and
         bool(DEVICE_PATTERN.match(v))),
    Rule("trainer.progress_every", "an integer >= 1", int_at_least(1)),
    Rule("optimizer.lr", "a number > 0", number_above(0)),
    Rule("optimizer.weight_decay", "a number >= 0", number_at_least(0)),
    Rule("data.name", f"one of {', '.join(SOURCE_NAMES)}", one_of(*SOURCE_NAMES)),
    Rule("data.batch_size", "an integer >= 1", int_at_least(1)),
    Rule("data.eval_batch_size", "an integer >= 1", int_at_least(1)),
    Rule("data.image_size", "an integer >= 1", int_at_least(1)),
    Rule("data.in_chans", "an integer >= 1", int_at_least(1)),
    Rule("data.num_classes", "an integer >= 2", int_at_least(2)),
    Rule("data.resize", "an integer >= 1, or null to keep the native size", int_at_least(1), optional=True),
    Rule("data.val_split", "a count >= 0 or a fraction in (0, 1)", number_at_least(0)),
    Rule("data.augment", "true or false", is_bool),
    Rule("data.normalize", "true or false", is_bool),
    Rule("data.download", "true or false", is_bool),
)


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that breaks a rule; keys a config lacks are skipped."""
    for rule in RULES:
        value = OmegaConf.select(cfg, rule.key, default="<absent>")
        if value == "<absent>" or (value is None and rule.optional):
            continue
        if not rule.check(value):
            raise ConfigError(f"{rule.key}={value!r} is not allowed: expected {rule.allowed}")
    _check_model(cfg)
    _check_scheduler(cfg)
    _check_normalization(cfg.data)
    resolve_device(cfg.trainer.device)


def _check_model(cfg: DictConfig) -> None:
    if cfg.model.name not in list_models():
        raise ConfigError(f"model.name='{cfg.model.name}' is not a registered model; "
                          f"choose one of: {', '.join(list_models())}")
    if cfg.model.get("init", "default") not in INIT_SCHEMES:
        raise ConfigError(f"model.init='{cfg.model.init}' is not allowed: expected one of {', '.join(INIT_SCHEMES)}")


def _check_scheduler(cfg: DictConfig) -> None:
    warmup = cfg.scheduler.get("warmup_epochs", 0)
    if not number_at_least(0)(warmup):
        raise ConfigError(f"scheduler.warmup_epochs={warmup!r} is not allowed: expected a number >= 0")


def _check_normalization(data_cfg: DictConfig) -> None:
    for key in ("mean", "std"):
        values = list(data_cfg[key])
        if len(values) != data_cfg.in_chans or not all(_is_number(v) for v in values):
            raise ConfigError(f"data.{key}={values} is not allowed: expected {data_cfg.in_chans} numbers "
                              "(one per channel, data.in_chans)")
    if any(v <= 0 for v in data_cfg.std):
        raise ConfigError(f"data.std={list(data_cfg.std)} is not allowed: every value must be > 0")


def resolve_device(spec: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; an explicit device must exist on this machine."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.device={spec} but CUDA is not available here; use trainer.device=cpu or auto")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"trainer.device={spec} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if spec == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.device=mps but MPS is not available here; use trainer.device=cpu or auto")
    return torch.device(spec)
