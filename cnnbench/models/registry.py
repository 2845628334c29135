"""Model registry after timm: `@register_model` on a factory, `create_model(name, ...)` to build any of them."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable

import torch.nn as nn

from .init import INIT_SCHEMES, init_weights

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a factory under its function name; registering a name twice is an error."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model '{name}' is already registered")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registry names matching a shell-style pattern."""
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def is_model(name: str) -> bool:
    return name in _MODELS


def get_model_factory(name: str) -> Callable[..., nn.Module]:
    """The registered factory itself, e.g. to read its keyword arguments with `inspect.signature`."""
    if name not in _MODELS:
        raise KeyError(f"unknown model '{name}'; known models: {', '.join(list_models())}")
    return _MODELS[name]


# Factory arguments that come from the data, never from a model's options.
DATA_ARGUMENTS = ("num_classes", "in_chans", "input_size")


def create_model(name: str, num_classes: int = 10, in_chans: int = 1, input_size: int | None = None,
                 init: str = "default", **kwargs) -> nn.Module:
    """The one way to build a model, after timm's factory: the registered `name` for `num_classes` classes of
    `in_chans`-channel inputs, its own options in `kwargs` (None values dropped: the factory's default applies),
    `input_size` passed to the factories that take it, then the weights initialised by `init` (INIT_SCHEMES).

    An unknown name raises KeyError listing the known ones; a bad option raises ValueError or TypeError that names
    the argument (`width_div=3 is not allowed: ...`); an input too small for the network raises InputTooSmall."""
    factory = get_model_factory(name)
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    if input_size is not None and "input_size" in inspect.signature(factory).parameters:
        kwargs["input_size"] = input_size
    if init not in INIT_SCHEMES:
        raise ValueError(f"init={init} is not allowed: expected one of {', '.join(INIT_SCHEMES)}")
    return init_weights(factory(num_classes=num_classes, in_chans=in_chans, **kwargs), init)


def model_options(name: str) -> list[str]:
    """The keyword arguments a registered model takes besides the data's (its `model.<option>` keys)."""
    return [p for p in inspect.signature(get_model_factory(name)).parameters if p not in DATA_ARGUMENTS]
