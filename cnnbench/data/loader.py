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

    def draw_order(self) -> torch.Tensor | None:
        """A new epoch's permutation (None when not shuffling)."""
        if not self.shuffle:
            return None
        return torch.randperm(len(self.labels), device=self.device, generator=self.generator)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(self.draw_order())

    def batches(self, order: torch.Tensor | None, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one epoch in `order`, from batch number `start_step` on (to finish a resumed epoch)."""
        n = len(self.labels)
        for start in range(start_step * self.batch_size, n, self.batch_size):
            if order is None:
                images = self.images[start:start + self.batch_size]
                labels = self.labels[start:start + self.batch_size]
            else:
                index = order[start:start + self.batch_size]
                images, labels = self.images[index], self.labels[index]
            yield self.transform(images, self.generator), labels
