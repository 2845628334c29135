"""AlexNet family: d2l's AlexNet (seed 000/003, built for 224x224) and seed 001's AlexNetSmall (28x28).

d2l's AlexNet hard-codes `nn.Linear(6400, 4096)`, which is 256 * 5 * 5 at 224x224; here the width is
derived from `input_size`. On 28x28 or 32x32 images the 11x11/stride-4 stem and three 3x3/stride-2 max
pools run out of pixels, so the model refuses them and names the resize the book uses (224).
AlexNetSmall ends in an adaptive pool to 4x4 and works on any input of at least 4x4.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .shapes import check_input_size, flat_size, spatial_path


class AlexNet(nn.Module):
    """Five convolutions (11x11/4, 5x5, three 3x3) with three 3x3/2 max pools, then 4096-4096-classes."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size: int = 224):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        path = spatial_path(self.features)
        check_input_size("alexnet", input_size, path, "224 (the d2l book's size)")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_size(256, input_size, path), 4096), nn.ReLU(),
            nn.Dropout(p=0.5),
            nn.Linear(4096, 4096), nn.ReLU(),
            nn.Dropout(p=0.5),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class AlexNetSmall(nn.Module):
    """Seed 001's AlexNet for 28x28: 5x5 and 3x3 convolutions, two max pools, adaptive pool to 4x4."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size: int = 28):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 32, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 128, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(128, 64, kernel_size=3, padding=1), nn.ReLU(),
        )
        check_input_size("alexnet_small", input_size, spatial_path(self.features), "28 (seed 001's size)")
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d((4, 4)),
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(64 * 4 * 4, 256), nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model
def alexnet(num_classes: int = 10, in_chans: int = 1, input_size: int = 224) -> AlexNet:
    """d2l's AlexNet for Fashion-MNIST resized to 224x224 (seed 000/003)."""
    return AlexNet(num_classes, in_chans, input_size)


@register_model
def alexnet_small(num_classes: int = 10, in_chans: int = 1, input_size: int = 28) -> AlexNetSmall:
    """Seed 001's AlexNetSmall: AlexNet's ideas (ReLU, dropout, more channels) sized for 28x28."""
    return AlexNetSmall(num_classes, in_chans, input_size)
