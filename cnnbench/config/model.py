"""The config's model: `create_model` with the `model` section and the data's classes, channels and input size, its
refusals turned into the one-line errors that name the `model.` key (or `data.resize`)."""

from __future__ import annotations

import re

import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from ..data import input_size
from ..errors import ConfigError
from ..models import InputTooSmall, create_model

NAMES_AN_ARGUMENT = re.compile(r"^[a-z_]+=")  # "width_div=3 is not allowed: ..."


def build_model(cfg: DictConfig, init: str | None = None) -> nn.Module:
    """The model `cfg.model` describes for `cfg.data`; `init` replaces `model.init` (`default` skips the work)."""
    options = OmegaConf.to_container(cfg.model, resolve=True)
    name = options.pop("name")
    if init is not None:
        options["init"] = init
    size = input_size(cfg.data)
    try:
        return create_model(name, num_classes=cfg.data.num_classes, in_chans=cfg.data.in_chans, input_size=size,
                            **options)
    except InputTooSmall as err:
        raise ConfigError(f"model {err.model_name} needs inputs of at least {err.needed}x{err.needed} (got "
                          f"{err.input_size}x{err.input_size}): set data.resize={err.hint}") from err
    except (ValueError, TypeError) as err:
        text = str(err).splitlines()[0]
        raise ConfigError(f"model.{text}" if NAMES_AN_ARGUMENT.match(text) else f"model={name}: {text}") from err
    except RuntimeError as err:  # a layer that refuses its size
        raise ConfigError(f"model={name} cannot take {cfg.data.in_chans}x{size}x{size} inputs ({text_of(err)}); "
                          "change data.resize or the model's options") from err


def text_of(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__
