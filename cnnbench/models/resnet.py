"""Seed 001's ResNet: BasicBlock (18/34) and Bottleneck (50) residual blocks, one class and a table.

`stem="small"` is the seed's `small_input=True` stem (3x3 conv, stride 1) for 28x28/32x32 images;
`stem="imagenet"` is the 7x7-stride-2 conv + 3x3 max pool stem that d2l uses at 224 and 96.
The seed hard-codes 1 input channel in the small stem and 3 in the imagenet stem; here both take
`in_chans`. Weight init is the seed's `_init_weights` (Kaiming for convs, N(0, 0.01) for the head).

Parameter counts (10 classes) of the seed's code: with its 1-channel small stem ResNet-18/34/50 have
11,172,810 / 21,280,970 / 23,519,690 parameters. The seed prints 11,173,962 / 21,282,122 / 23,508,234:
the first two are the counts for 3 input channels (`in_chans=3`), the third matches neither 1 nor 3
channels (23,520,842 with 3). The code wins; see docs/models.md.
Global average pooling makes every input size work; the small stem suits 28x28/32x32, the imagenet stem
96x96/224x224 (d2l's ResNet-18 printout at 224: 64x56x56 after the stem, 512x7x7 after layer4).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .init import kaiming_in_order
from .registry import register_model

# name -> (block type, blocks per stage)
RESNET_ARCHS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)


def projection(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    """Shortcut: identity when shapes match, else a 1x1 conv + BN as in the seed."""
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = projection(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = projection(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def make_stem(stem: str, in_chans: int) -> nn.Sequential:
    if stem == "small":
        return nn.Sequential(
            nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
    if stem == "imagenet":
        return nn.Sequential(
            nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
    raise ValueError(f"stem={stem} is not allowed: expected one of small, imagenet")


class ResNet(nn.Module):
    def __init__(self, block: str, num_blocks: tuple[int, ...], num_classes: int = 10, in_chans: int = 1,
                 stem: str = "small"):
        super().__init__()
        block_cls = BLOCKS[block]
        self.stem = make_stem(stem, in_chans)
        self.in_planes = 64
        self.layer1 = self._make_layer(block_cls, STAGE_WIDTHS[0], num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block_cls, STAGE_WIDTHS[1], num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block_cls, STAGE_WIDTHS[2], num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block_cls, STAGE_WIDTHS[3], num_blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(STAGE_WIDTHS[3] * block_cls.expansion, num_classes)
        kaiming_in_order(self)  # the seed's _init_weights

    def _make_layer(self, block_cls: type[nn.Module], planes: int, num_blocks: int, stride: int):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block_cls(self.in_planes, planes, stride=s))
            self.in_planes = planes * block_cls.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.classifier(self.flatten(self.avgpool(x)))


def _resnet(name: str, num_classes: int, in_chans: int, stem: str) -> ResNet:
    block, num_blocks = RESNET_ARCHS[name]
    return ResNet(block, num_blocks, num_classes=num_classes, in_chans=in_chans, stem=stem)


@register_model
def resnet18(num_classes: int = 10, in_chans: int = 1, stem: str = "small") -> ResNet:
    return _resnet("resnet18", num_classes, in_chans, stem)


@register_model
def resnet34(num_classes: int = 10, in_chans: int = 1, stem: str = "small") -> ResNet:
    return _resnet("resnet34", num_classes, in_chans, stem)


@register_model
def resnet50(num_classes: int = 10, in_chans: int = 1, stem: str = "small") -> ResNet:
    return _resnet("resnet50", num_classes, in_chans, stem)


class SmallResNet(nn.Module):
    """cnnbench's own: the seed's BasicBlock in a short, narrow stack for 28x28/32x32 inputs on a CPU.

    Stem 3x3 conv to `widths[0]` (stride `stem_stride`: 2 halves the resolution before any block), then one
    stage per width of `depths[i]` BasicBlocks (the first of each stage after the first halves the resolution),
    global average pooling and a linear head; the seed's init.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, widths=(32, 64, 128), depths=(1, 1, 1),
                 stem_stride: int = 1):
        super().__init__()
        widths, depths = tuple(int(w) for w in widths), tuple(int(d) for d in depths)
        if not widths or len(widths) != len(depths) or min(widths) < 1 or min(depths) < 1:
            raise ValueError(f"widths={list(widths)} is not allowed with depths={list(depths)}: expected two lists of "
                             "integers >= 1 of the same length, e.g. [32,64,128] and [1,1,1]")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride={stem_stride} is not allowed: expected 1 or 2")
        self.stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, stride=stem_stride, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages, in_planes = [], widths[0]
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            blocks = []
            for j in range(depth):
                blocks.append(BasicBlock(in_planes, width, stride=2 if i > 0 and j == 0 else 1))
                in_planes = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(in_planes, num_classes)
        kaiming_in_order(self)  # the seed's _init_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.avgpool(self.stages(self.stem(x)))))


@register_model
def resnet_small(num_classes: int = 10, in_chans: int = 1, widths=(32, 64, 128), depths=(1, 1, 1),
                 stem_stride: int = 1) -> SmallResNet:
    return SmallResNet(num_classes=num_classes, in_chans=in_chans, widths=widths, depths=depths,
                       stem_stride=stem_stride)
