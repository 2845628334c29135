"""Spatial arithmetic of convolution and pooling layers: output sizes and the smallest usable input.

The output size of a convolution or pooling window along one axis is seed 001's formula
(the same as PyTorch's `nn.Conv2d` / `nn.MaxPool2d` documentation, `ceil_mode=False`):

    H_out = floor((H_in + 2 * padding - dilation * (kernel_size - 1) - 1) / stride + 1)

`check_input_size` turns a too-small input into an `InputTooSmall` error at construction time, before a forward
pass would fail somewhere deep inside the network.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch.nn as nn

SPATIAL_WINDOWS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


class Window(NamedTuple):
    """Kernel, stride, padding and dilation of a conv/pool layer along one (square) axis."""

    kernel_size: int
    stride: int
    padding: int
    dilation: int


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output size of a conv/pool window along one axis (seed 001's formula, see the module docstring).

    >>> conv_output_size(28, 5, padding=2), conv_output_size(28, 2, stride=2), conv_output_size(224, 11, 4, 1)
    (28, 14, 54)
    """
    return (size + 2 * padding - effective_kernel_size(kernel_size, dilation)) // stride + 1


def effective_kernel_size(kernel_size: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: a 3x3 kernel with dilation 2 covers 5x5 input pixels."""
    return dilation * (kernel_size - 1) + 1


def _first(value: int | tuple[int, ...]) -> int:
    return value[0] if isinstance(value, tuple) else value


def window_of(module: nn.Module) -> Window | None:
    """The sliding window of a Conv2d/MaxPool2d/AvgPool2d (height axis), None for any other module."""
    if not isinstance(module, SPATIAL_WINDOWS):
        return None
    dilation = getattr(module, "dilation", 1)  # AvgPool2d has none
    stride = module.stride if module.stride is not None else module.kernel_size
    return Window(_first(module.kernel_size), _first(stride), _first(module.padding), _first(dilation))


def spatial_path(module: nn.Module) -> list[Window]:
    """Windows of the conv/pool layers in `module`, in registration order.

    That is the order of the forward pass for plain chains (LeNet, AlexNet, VGG, NiN) and for blocks whose
    parallel branches keep the spatial size (Inception, dense blocks); not for residual shortcuts.
    """
    return [window for m in module.modules() if (window := window_of(m)) is not None]


def sizes_along(size: int, windows: Iterable[Window]) -> list[int]:
    """Spatial size after each window, starting from `size`."""
    sizes = []
    for window in windows:
        size = conv_output_size(size, *window)
        sizes.append(size)
    return sizes


def flat_size(channels: int, input_size: int, windows: Iterable[Window]) -> int:
    """Features after flattening `channels` maps that `windows` shrank from `input_size` (square inputs)."""
    side = sizes_along(input_size, windows)[-1]
    return channels * side * side


def min_input_size(windows: Iterable[Window]) -> int:
    """Smallest input size for which every window still produces at least one output pixel."""
    windows = list(windows)
    size = 1
    while min(sizes_along(size, windows), default=1) < 1:
        size += 1
    return size


def check_input_size(model_name: str, input_size: int, windows: Iterable[Window], resize_hint: str) -> None:
    """Raise InputTooSmall if `input_size` is too small for `windows`.

    `resize_hint` completes "set data.resize=...", e.g. "224 (the d2l book's size)".
    """
    needed = min_input_size(windows)
    if input_size < needed:
        raise InputTooSmall(model_name, input_size, needed, resize_hint)


class InputTooSmall(ValueError):
    """A model built for inputs smaller than its windows allow; `hint` is a size that works and why."""

    def __init__(self, model_name: str, input_size: int, needed: int, hint: str):
        self.model_name, self.input_size, self.needed, self.hint = model_name, input_size, needed, hint
        super().__init__(f"{model_name} needs inputs of at least {needed}x{needed} (got {input_size}x{input_size}); "
                         f"{hint} works")

