"""`build_model(cfg.model, num_classes=, in_chans=, input_size=)`: the model a config asks for, for every command.

`cfg.model` holds the registry name, the init scheme and the factory's own keyword arguments; the class
count, channels and (for factories that declare `input_size`) the input size come from the data.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from .init import init_weights
from .registry import get_model_factory

# Factory arguments filled from the data config, never from the model config.
DATA_ARGUMENTS = ("num_classes", "in_chans", "input_size")


def _plain(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def model_options(name: str) -> list[str]:
    """The keyword arguments `model.<option>` may set for a registered model."""
    parameters = inspect.signature(get_model_factory(name)).parameters
    return [p for p in parameters if p not in DATA_ARGUMENTS]


def build_model(model_cfg: DictConfig | Mapping[str, Any], *, num_classes: int, in_chans: int,
                input_size: int) -> nn.Module:
    """Create `model_cfg.name` for the data's classes, channels and (square) input size, then apply `model_cfg.init`.

    The config is validated before (cnnbench.config: the name, the init scheme, the model's own options); a
    model that refuses its input size raises a one-line ConfigError from its constructor.
    """
    kwargs = _plain(model_cfg)
    name = kwargs.pop("name")
    init = kwargs.pop("init", "default")
    factory = get_model_factory(name)
    if "input_size" in inspect.signature(factory).parameters:
        kwargs["input_size"] = input_size
    model = factory(num_classes=num_classes, in_chans=in_chans, **kwargs)
    return init_weights(model, init)
