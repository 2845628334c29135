"""DenseNet: d2l's dense blocks and transition layers (chapter 7.7; seed 003 names DenseNet in its
list of modern networks and follows the book for all the others), trained at 96x96 in the book.

A dense block's convolutions each see the concatenation of the block input and every earlier output
(BN -> ReLU -> 3x3 conv, `growth_rate` new channels each); a transition layer halves the channels with
a 1x1 convolution and the size with a 2x2 average pool. The stem (7x7/2 conv, 3x3/2 max pool) and three
transitions need inputs of at least 29x29: 28x28 images need `data.resize` (96 in the book).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .shapes import check_input_size, spatial_path

NUM_CONVS_IN_DENSE_BLOCKS = (4, 4, 4, 4)
STEM_CHANNELS = 64
GROWTH_RATE = 32


def conv_block(input_channels: int, num_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1),
    )


class DenseBlock(nn.Module):
    def __init__(self, num_convs: int, input_channels: int, num_channels: int):
        super().__init__()
        self.net = nn.Sequential(*(conv_block(num_channels * i + input_channels, num_channels)
                                   for i in range(num_convs)))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        for blk in self.net:
            X = torch.cat((X, blk(X)), dim=1)
        return X


def transition_block(input_channels: int, num_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2),
    )


class DenseNet(nn.Module):
    """b1, four dense blocks with transitions between them, BN-ReLU, global average pool, Linear."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size: int = 96):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(in_chans, STEM_CHANNELS, kernel_size=7, stride=2, padding=3),
                          nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU(),
                          nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]
        num_channels = STEM_CHANNELS
        for i, num_convs in enumerate(NUM_CONVS_IN_DENSE_BLOCKS):
            layers.append(DenseBlock(num_convs, num_channels, GROWTH_RATE))
            num_channels += num_convs * GROWTH_RATE
            if i != len(NUM_CONVS_IN_DENSE_BLOCKS) - 1:
                layers.append(transition_block(num_channels, num_channels // 2))
                num_channels = num_channels // 2
        layers += [nn.BatchNorm2d(num_channels), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                   nn.Linear(num_channels, num_classes)]
        # One Sequential, as in the book (`net = nn.Sequential(b1, *blks, ...)`).
        self.net = nn.Sequential(*layers)
        check_input_size("densenet", input_size, spatial_path(self.net), "96 (the d2l book's size)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model
def densenet(num_classes: int = 10, in_chans: int = 1, input_size: int = 96) -> DenseNet:
    """d2l's DenseNet: growth rate 32, four dense blocks of four convolutions each."""
    return DenseNet(num_classes, in_chans, input_size)
