"""Weight-initialisation schemes selectable with `model.init`."""

from __future__ import annotations

import torch.nn as nn


def _xavier(m: nn.Module) -> None:
    # d2l's train_ch6: xavier_uniform_ on the weights of Linear and Conv2d, biases untouched.
    if type(m) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(m.weight)


def _kaiming(m: nn.Module) -> None:
    # Seed 001's ResNet._init_weights, applied to any model (`model.init=kaiming`) and by the ResNets themselves.
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
        nn.init.constant_(m.weight, 1)
        nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0, 0.01)
        nn.init.constant_(m.bias, 0)


# `model.init` -> what is applied to every module; `default` keeps what the model's constructor did
# (PyTorch's defaults or the seed's own init).
INITIALIZERS = {"default": None, "xavier": _xavier, "kaiming": _kaiming}
INIT_SCHEMES = tuple(INITIALIZERS)


def init_weights(model: nn.Module, scheme: str) -> nn.Module:
    initializer = INITIALIZERS[scheme]
    if initializer is not None:
        model.apply(initializer)
    return model


def kaiming_in_order(model: nn.Module) -> nn.Module:
    """Kaiming init over `model.modules()` (parents before children), the order in which seed 001's ResNet draws
    its random weights; `init_weights` goes children first, as `nn.Module.apply` does."""
    for module in model.modules():
        _kaiming(module)
    return model
