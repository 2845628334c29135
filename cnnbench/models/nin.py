"""NiN (network in network): d2l's `nin_block` and model (seed 003), no fully connected layer at all.

Each block is a KxK convolution followed by two 1x1 convolutions (a per-pixel MLP); the last block
outputs one channel per class and a global average pool turns them into the logits. The 11x11/4 stem and
three 3x3/2 max pools need at least 63x63 inputs, so 28x28 and 32x32 images need `data.resize` (224 in
the book).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .shapes import check_input_size, spatial_path

# (output channels, kernel size, stride, padding) of each NiN block before the classifier block
NIN_BLOCKS = ((96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1))


def nin_block(in_channels: int, out_channels: int, kernel_size: int, strides: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
    )


class NiN(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size: int = 224):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for out_channels, kernel_size, stride, padding in NIN_BLOCKS:
            layers += [nin_block(channels, out_channels, kernel_size, stride, padding), nn.MaxPool2d(3, stride=2)]
            channels = out_channels
        layers += [
            nn.Dropout(0.5),
            nin_block(channels, num_classes, kernel_size=3, strides=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
        ]
        # One Sequential, as in the book, so layer names match its printout (net.0 ... net.9).
        self.net = nn.Sequential(*layers)
        check_input_size("nin", input_size, spatial_path(self.net), "224 (the d2l book's size)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model
def nin(num_classes: int = 10, in_chans: int = 1, input_size: int = 224) -> NiN:
    """d2l's NiN for Fashion-MNIST resized to 224x224."""
    return NiN(num_classes, in_chans, input_size)
