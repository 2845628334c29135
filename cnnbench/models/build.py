"""Build a model from its config and the data config (classes, channels, input size)."""

from __future__ import annotations

import inspect

import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .init import init_weights
from .registry import create_model, get_model_factory, list_models

NON_CONSTRUCTOR_KEYS = ("name", "init")


def build_model(model_cfg: DictConfig | dict, data_cfg: DictConfig | dict) -> nn.Module:
    """`create_model(model.name, num_classes, in_chans, **model kwargs)`, then `model.init`.

    Factories whose layer sizes depend on the image size declare `input_size`; it is filled with
    `data.resize` (when set) or `data.image_size`.
    """
    model_cfg = _plain(model_cfg)
    data_cfg = _plain(data_cfg)
    name = model_cfg.get("name")
    if name not in list_models():
        raise ConfigError(f"model={name} is not a registered model; choose one of: {', '.join(list_models())}")
    kwargs = {k: v for k, v in model_cfg.items() if k not in NON_CONSTRUCTOR_KEYS}
    parameters = inspect.signature(get_model_factory(name)).parameters
    unknown = [k for k in kwargs if k not in parameters]
    if unknown:
        allowed = [p for p in parameters if p not in ("num_classes", "in_chans", "input_size")]
        raise ConfigError(f"model.{unknown[0]} is not a parameter of {name}; "
                          f"allowed: {', '.join(allowed) or 'none'}")
    if "input_size" in parameters:
        kwargs["input_size"] = int(data_cfg.get("resize") or data_cfg["image_size"])
    try:
        model = create_model(name, num_classes=int(data_cfg["num_classes"]), in_chans=int(data_cfg["in_chans"]),
                             **kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model={name}: {err}") from err
    return init_weights(model, model_cfg.get("init", "default"))


def _plain(cfg: DictConfig | dict) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
