"""A loader over one device-resident uint8 tensor: batches are index slices, transforms run batched."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from .sources import ImageSet
from .transforms import BatchTransform


class DeviceLoader:
    """Iterates (images, labels) batches of an ImageSet held on `device`.

    With `shuffle`, each pass draws a new permutation from `generator` (on the same device), which
    also drives augmentation: the same seed gives the same batches.
    """

    def __init__(self, dataset: ImageSet, batch_size: int, transform: BatchTransform, device: torch.device,
                 shuffle: bool = False, generator: torch.Generator | None = None):
        self.images = dataset.images.to(device)
        self.labels = dataset.labels.to(device)
        self.batch_size = batch_size
        self.transform = transform
        self.device = device
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    @property
    def num_examples(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, device=self.device, generator=self.generator) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                images = self.images[start:start + self.batch_size]
                labels = self.labels[start:start + self.batch_size]
            else:
                index = order[start:start + self.batch_size]
                images, labels = self.images[index], self.labels[index]
            yield self.transform(images, self.generator), labels
