"""Seed 002's parameter-matched pair for MNIST: FC2Layer (an MLP) and a small CNN with ~6.4k weights each.

The course trains `FC2Layer(784, n_hidden=8, 10)` (6,442 parameters) against `CNN(784, n_feature=6, 10)`
(6,422 parameters), then shuffles the pixels with one fixed permutation: the MLP does not care, the CNN
loses its advantage. Both end in log-softmax as in the seed; with `nn.CrossEntropyLoss` that changes
nothing, since log-softmax of log-probabilities returns them unchanged.

Differences from the seed, none in the arithmetic: the input width (`in_chans * input_size**2`), the
CNN's in-channels, class count and first Linear width are derived instead of hard-coded for 1x28x28 and
10 classes; the CNN's `F.relu` / `F.max_pool2d` / `F.log_softmax` calls are modules (so that
`python -m cnnbench.inspect` sees them), and `view(-1, n)` is `nn.Flatten()`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .shapes import check_input_size, flat_size, spatial_path


class FC2Layer(nn.Module):
    """Linear-ReLU-Linear-ReLU-Linear-LogSoftmax on the flattened image."""

    def __init__(self, input_size: int, n_hidden: int, output_size: int):
        super().__init__()
        self.flatten = nn.Flatten()
        self.network = nn.Sequential(
            nn.Linear(input_size, n_hidden), nn.ReLU(),
            nn.Linear(n_hidden, n_hidden), nn.ReLU(),
            nn.Linear(n_hidden, output_size),
            nn.LogSoftmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.flatten(x))


class CNN(nn.Module):
    """Two 5x5 convolutions with `n_feature` maps, each followed by ReLU and a 2x2 max pool, then 50-classes."""

    def __init__(self, num_classes: int, in_chans: int, input_size: int, n_feature: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels=in_chans, out_channels=n_feature, kernel_size=5)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(kernel_size=2)
        self.conv2 = nn.Conv2d(n_feature, n_feature, kernel_size=5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(kernel_size=2)
        path = spatial_path(self)
        check_input_size("cnn_small", input_size, path, "28 (seed 002's size)")
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(flat_size(n_feature, input_size, path), 50)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(50, num_classes)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.fc1(self.flatten(x)))
        return self.log_softmax(self.fc2(x))


@register_model
def mlp(num_classes: int = 10, in_chans: int = 1, input_size: int = 28, n_hidden: int = 8) -> FC2Layer:
    """Seed 002's FC2Layer; the course's `n_hidden = 8` gives 6,442 parameters on 1x28x28."""
    _check_positive("n_hidden", n_hidden)
    return FC2Layer(in_chans * input_size * input_size, n_hidden, num_classes)


@register_model
def cnn_small(num_classes: int = 10, in_chans: int = 1, input_size: int = 28, n_feature: int = 6) -> CNN:
    """Seed 002's CNN; the course's `n_features = 6` gives 6,422 parameters on 1x28x28."""
    _check_positive("n_feature", n_feature)
    return CNN(num_classes, in_chans, input_size, n_feature)


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed: expected an integer >= 1")
