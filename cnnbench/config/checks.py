"""The checks shared by validation and the run's preparation: rules over keys, per-channel normalisation, layers a
deterministic CUDA run cannot have; and how a refused value reads."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .rules import number_above, number_in


def check_rules(cfg: DictConfig, rules) -> None:
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

def check_normalization(data_cfg: DictConfig) -> None:
    channels = data_cfg.in_chans
    for key, per_value, allowed in (("mean", number_in(0, 1, high_open=False), "in [0, 1]"),
                                    ("std", number_above(0), "> 0")):
        values = _plain(data_cfg.get(key))
        if not isinstance(values, list) or len(values) != channels or not all(per_value(v) for v in values):
            raise not_allowed(f"data.{key}", values, f"{channels} number(s) {allowed}, one per channel "
                                                     f"(data.in_chans={channels})")


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
