"""Model registry after timm: `@register_model` on a factory, `create_model(name, ...)` to build."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

import torch.nn as nn

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


def create_model(name: str, num_classes: int = 10, in_chans: int = 1, **kwargs) -> nn.Module:
    """Build a registered model; an unknown name raises a KeyError listing the known ones."""
    return get_model_factory(name)(num_classes=num_classes, in_chans=in_chans, **kwargs)
