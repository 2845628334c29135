"""VGG: d2l's `vgg_block` / `vgg(conv_arch)` (seed 000/003), VGG-11 on 224x224 single-channel images.

`width_div` divides every block's channel count as the book's `small_conv_arch` does (`ratio = 4`, the
network it actually trains); the two 4096-wide Linear layers stay as they are, also as in the book.
The first Linear's width is derived from `input_size` (the book's `out_channels * 7 * 7` at 224x224).
Five 2x2 max pools need at least 32x32 inputs: CIFAR-10 works as is, 28x28 needs a resize.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .shapes import check_input_size, flat_size, spatial_path

# name -> ((number of 3x3 convolutions, output channels) per block)
VGG_ARCHS = {
    "vgg11": ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
}


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """`num_convs` 3x3 convolutions (padding 1) with ReLU, then a 2x2 max pool that halves the size."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, name: str, conv_arch: tuple[tuple[int, int], ...], num_classes: int = 10,
                 in_chans: int = 1, input_size: int = 224):
        super().__init__()
        blocks, channels = [], in_chans
        for num_convs, out_channels in conv_arch:
            blocks.append(vgg_block(num_convs, channels, out_channels))
            channels = out_channels
        self.features = nn.Sequential(*blocks)
        path = spatial_path(self.features)
        check_input_size(name, input_size, path, "224 (the d2l book's size)")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_size(channels, input_size, path), 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _vgg(name: str, num_classes: int, in_chans: int, input_size: int, width_div: int) -> VGG:
    if not isinstance(width_div, int) or width_div < 1 or any(c % width_div for _, c in VGG_ARCHS[name]):
        raise ValueError(f"width_div={width_div!r} is not allowed: expected an integer >= 1 that divides 64 (the "
                         "book trains 4)")
    conv_arch = tuple((num_convs, channels // width_div) for num_convs, channels in VGG_ARCHS[name])
    return VGG(name, conv_arch, num_classes=num_classes, in_chans=in_chans, input_size=input_size)


@register_model
def vgg11(num_classes: int = 10, in_chans: int = 1, input_size: int = 224, width_div: int = 1) -> VGG:
    """VGG-11 (8 convolutions, 3 Linear layers); `width_div=4` is the smaller network d2l trains."""
    return _vgg("vgg11", num_classes, in_chans, input_size, width_div)
