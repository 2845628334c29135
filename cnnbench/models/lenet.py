"""LeNet family: d2l's LeNet, seed 001's LeNet-5, and seed 003's LeNet with batch normalization.

All four follow the seeds' code layer for layer. The width of the first Linear layer is derived from
`input_size` instead of the seeds' hard-coded 16 * 5 * 5 (16 * 4 * 4 for the batch-norm LeNet, whose
first convolution has no padding), which is what it comes to at 28x28.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from .batchnorm import BatchNorm
from .registry import register_model
from .shapes import check_input_size, flat_size, spatial_path

# A normalization layer per feature count, for after convolutions (2d) and after Linear layers (1d).
NormFactory = Callable[[int], nn.Module]
TORCH_BATCHNORM = (nn.BatchNorm2d, nn.BatchNorm1d)
SCRATCH_BATCHNORM = (lambda n: BatchNorm(n, num_dims=4), lambda n: BatchNorm(n, num_dims=2))


class LeNet(nn.Module):
    """conv(5) -> pool -> conv(5) -> pool -> 120 -> 84 -> classes, with a choice of act/pool/norm.

    `norm` = (norm2d, norm1d) puts a normalization layer between each conv/Linear layer and its
    activation, as seed 003 does.
    """

    def __init__(self, name: str, num_classes: int, in_chans: int, input_size: int, act: type[nn.Module],
                 pool: type[nn.Module], conv1_padding: int = 2,
                 norm: tuple[NormFactory, NormFactory] | None = None):
        super().__init__()

        def norm_layer(dims: int, num_features: int) -> list[nn.Module]:
            return [] if norm is None else [norm[dims](num_features)]

        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, kernel_size=5, padding=conv1_padding), *norm_layer(0, 6), act(),
            pool(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), *norm_layer(0, 16), act(),
            pool(kernel_size=2, stride=2),
        )
        path = spatial_path(self.features)
        check_input_size(name, input_size, path, "28 (the seeds' size)")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_size(16, input_size, path), 120), *norm_layer(1, 120), act(),
            nn.Linear(120, 84), *norm_layer(1, 84), act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model
def lenet(num_classes: int = 10, in_chans: int = 1, input_size: int = 28) -> LeNet:
    """d2l's LeNet (seed 000/003): sigmoid activations and average pooling."""
    return LeNet("lenet", num_classes, in_chans, input_size, act=nn.Sigmoid, pool=nn.AvgPool2d)


@register_model
def lenet5(num_classes: int = 10, in_chans: int = 1, input_size: int = 28) -> LeNet:
    """Seed 001's modern LeNet-5: ReLU activations and max pooling."""
    return LeNet("lenet5", num_classes, in_chans, input_size, act=nn.ReLU, pool=nn.MaxPool2d)


@register_model
def lenet_bn(num_classes: int = 10, in_chans: int = 1, input_size: int = 28) -> LeNet:
    """Seed 003's concise batch-norm LeNet: nn.BatchNorm2d/1d, sigmoid, average pooling, no conv1 padding."""
    return LeNet("lenet_bn", num_classes, in_chans, input_size, act=nn.Sigmoid, pool=nn.AvgPool2d,
                 conv1_padding=0, norm=TORCH_BATCHNORM)


@register_model
def lenet_bn_scratch(num_classes: int = 10, in_chans: int = 1, input_size: int = 28) -> LeNet:
    """Seed 003's batch-norm LeNet built on its from-scratch BatchNorm layer (cnnbench.models.batchnorm)."""
    return LeNet("lenet_bn_scratch", num_classes, in_chans, input_size, act=nn.Sigmoid, pool=nn.AvgPool2d,
                 conv1_padding=0, norm=SCRATCH_BATCHNORM)
