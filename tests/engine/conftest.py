"""A tiny in-memory training problem for the engine's own tests: no config, no files, milliseconds."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cnnbench.data.loader import DeviceLoader
from cnnbench.data.sources import ImageSet
from cnnbench.data.transforms import BatchTransform
from cnnbench.engine.setup import TrainSetup

CPU = torch.device("cpu")


def image_set(count: int, seed: int) -> ImageSet:
    """3 classes of 1x4x4 images, each class brighter than the one before (learnable in a few steps)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(3, (count,), generator=gen)
    images = (torch.randint(0, 60, (count, 1, 4, 4), generator=gen) + 80 * labels[:, None, None, None]).to(torch.uint8)
    return ImageSet(images, labels)


def loader(count: int = 40, batch_size: int = 8, shuffle: bool = True, seed: int = 0) -> DeviceLoader:
    return DeviceLoader(image_set(count, seed), batch_size, BatchTransform([0.5], [0.25]), CPU, shuffle=shuffle,
                        generator=torch.Generator().manual_seed(seed) if shuffle else None)


def setup(lr: float = 0.1, scheduler: bool = True, seed: int = 0) -> TrainSetup:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.9 ** step) if scheduler else None
    return TrainSetup(model, optimizer, nn.CrossEntropyLoss(), schedule)


@pytest.fixture
def problem():
    """(setup, train loader, val loader) of the tiny problem."""
    return setup(), loader(), loader(24, batch_size=10, shuffle=False, seed=1)
