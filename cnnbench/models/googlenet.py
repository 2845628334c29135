"""GoogLeNet: d2l's Inception block and five-stage model (seed 003), trained at 96x96 in the book.

Every Inception branch keeps the spatial size, and the network ends in a global average pool, so any
input of at least 1x1 goes through; the book resizes Fashion-MNIST to 96x96 to keep training short.
The branch activations are `nn.ReLU` modules here instead of the seed's `F.relu` calls (same
computation) so that they show up in `python -m cnnbench.inspect`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model

# Per stage: Inception blocks as (in_channels, c1, (c2 reduce, c2), (c3 reduce, c3), c4).
INCEPTION_STAGES = (
    ((192, 64, (96, 128), (16, 32), 32),
     (256, 128, (128, 192), (32, 96), 64)),
    ((480, 192, (96, 208), (16, 48), 64),
     (512, 160, (112, 224), (24, 64), 64),
     (512, 128, (128, 256), (24, 64), 64),
     (512, 112, (144, 288), (32, 64), 64),
     (528, 256, (160, 320), (32, 128), 128)),
    ((832, 256, (160, 320), (32, 128), 128),
     (832, 384, (192, 384), (48, 128), 128)),
)


class Inception(nn.Module):
    """Four parallel paths (1x1; 1x1-3x3; 1x1-5x5; 3x3 max pool-1x1) concatenated on channels."""

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p1_relu = nn.ReLU()
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_relu1 = nn.ReLU()
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p2_relu2 = nn.ReLU()
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_relu1 = nn.ReLU()
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p3_relu2 = nn.ReLU()
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)
        self.p4_relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = self.p1_relu(self.p1_1(x))
        p2 = self.p2_relu2(self.p2_2(self.p2_relu1(self.p2_1(x))))
        p3 = self.p3_relu2(self.p3_2(self.p3_relu1(self.p3_1(x))))
        p4 = self.p4_relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def stem(in_chans: int) -> tuple[nn.Sequential, nn.Sequential]:
    """The book's b1 (7x7/2 conv + 3x3/2 max pool) and b2 (1x1 and 3x3 convs + 3x3/2 max pool)."""
    b1 = nn.Sequential(nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = nn.Sequential(nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
                       nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    return b1, b2


class GoogLeNet(nn.Module):
    """b1..b5 as in the book, then Linear(1024, classes); layer names `net.0` ... `net.5` follow it."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1):
        super().__init__()
        b3, b4, b5 = (nn.Sequential(*(Inception(*spec) for spec in stage)) for stage in INCEPTION_STAGES)
        b3.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        b4.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        b5.extend([nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()])
        self.net = nn.Sequential(*stem(in_chans), b3, b4, b5, nn.Linear(1024, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model
def googlenet(num_classes: int = 10, in_chans: int = 1) -> GoogLeNet:
    """d2l's GoogLeNet (nine Inception blocks) for Fashion-MNIST resized to 96x96."""
    return GoogLeNet(num_classes, in_chans)
