"""`build_model(cfg.model, cfg.data)`: the model a config asks for, shared by training and inspect.

`cfg.model` holds the registry name, the init scheme and the factory's own keyword arguments; the
class count, channels and (for factories that declare `input_size`) the input size come from `cfg.data`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .init import INIT_SCHEMES, init_weights
from .registry import get_model_factory, is_model, list_models

# Factory arguments filled from the data config, never from the model config.
DATA_ARGUMENTS = ("num_classes", "in_chans", "input_size")


def _plain(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def model_input_size(data_cfg: DictConfig | Mapping[str, Any]) -> int:
    """Side of the square images the model sees: `data.resize` if set, else `data.image_size`."""
    return data_cfg.get("resize") or data_cfg["image_size"]


def model_options(name: str) -> list[str]:
    """The keyword arguments `model.<option>` may set for a registered model."""
    parameters = inspect.signature(get_model_factory(name)).parameters
    return [p for p in parameters if p not in DATA_ARGUMENTS]


def build_model(model_cfg: DictConfig | Mapping[str, Any], data_cfg: DictConfig | Mapping[str, Any]) -> nn.Module:
    """Create `model_cfg.name` for the data's classes, channels and input size, then apply `model_cfg.init`."""
    kwargs = _plain(model_cfg)
    name = kwargs.pop("name", None)
    init = kwargs.pop("init", "default")
    if not isinstance(name, str) or not is_model(name):
        raise ConfigError(f"model={name} is not a registered model; choose one of: {', '.join(list_models())}")
    if init not in INIT_SCHEMES:
        raise ConfigError(f"model.init={init} is not allowed: expected one of {', '.join(INIT_SCHEMES)}")
    options = model_options(name)
    for key in kwargs:
        if key in DATA_ARGUMENTS:
            raise ConfigError(f"model.{key} comes from the data config (data.num_classes, data.in_chans, "
                              f"data.resize or data.image_size); remove it from the model config")
        if key not in options:
            raise ConfigError(f"model.{key} is not an option of model {name}; "
                              f"its options: {', '.join(['init', *options])}")
    factory = get_model_factory(name)
    if "input_size" in inspect.signature(factory).parameters:
        kwargs["input_size"] = model_input_size(data_cfg)
    try:
        model = factory(num_classes=data_cfg["num_classes"], in_chans=data_cfg["in_chans"], **kwargs)
    except (TypeError, ValueError) as err:  # a kwarg of the wrong type, e.g. model.n_hidden=abc
        raise ConfigError(f"model {name} cannot be built with {kwargs}: {err}") from err
    return init_weights(model, init)
