"""LeNet family: the d2l LeNet (sigmoid, average pooling) and seed 001's LeNet-5 (ReLU, max pooling).

Both follow the seeds' code layer for layer. The width of the first Linear layer is derived from
`input_size` instead of the seeds' hard-coded 16 * 5 * 5, which is what it comes to at 28x28.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model


def flat_features(features: nn.Module, in_chans: int, input_size: int) -> int:
    """Number of features that `features` produces for one image, found by a dry run."""
    with torch.no_grad():
        return features(torch.zeros(1, in_chans, input_size, input_size)).flatten(1).shape[1]


class LeNet(nn.Module):
    """conv(5, pad 2) -> pool -> conv(5) -> pool -> 120 -> 84 -> classes, with a choice of act/pool."""

    def __init__(self, num_classes: int, in_chans: int, input_size: int, act: type[nn.Module],
                 pool: type[nn.Module]):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, kernel_size=5, padding=2), act(),
            pool(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), act(),
            pool(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_features(self.features, in_chans, input_size), 120), act(),
            nn.Linear(120, 84), act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model
def lenet(num_classes: int = 10, in_chans: int = 1, input_size: int = 28) -> LeNet:
    """d2l's LeNet (seed 000/003): sigmoid activations and average pooling."""
    return LeNet(num_classes, in_chans, input_size, act=nn.Sigmoid, pool=nn.AvgPool2d)


@register_model
def lenet5(num_classes: int = 10, in_chans: int = 1, input_size: int = 28) -> LeNet:
    """Seed 001's modern LeNet-5: ReLU activations and max pooling."""
    return LeNet(num_classes, in_chans, input_size, act=nn.ReLU, pool=nn.MaxPool2d)
