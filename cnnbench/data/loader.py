"""A loader over one device-resident uint8 tensor: batches are index slices, transforms run batched."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..runtime.distributed import ONE_PROCESS, Ranks, batch_indices, steps_per_pass
from .sources import ImageSet
from .transforms import BatchTransform


class EpochPasses:
    """What every loader shares: passes of `num_examples` images in global batches of `batch_size`, in a fresh
    permutation from `generator` when shuffling, each rank of a data-parallel run taking its part of a batch.

    Subclasses implement `num_examples` and `batches(order, start_step)`.
    """

    def __init__(self, batch_size: int, transform: BatchTransform, device: torch.device, shuffle: bool,
                 generator: torch.Generator | None, ranks: Ranks, augment_generator: torch.Generator | None):
        self.batch_size = batch_size
        self.transform = transform
        self.device = device
        self.shuffle = shuffle
        self.generator = generator
        self.augment_generator = augment_generator or generator
        self.ranks = ranks
        self.drop_last = False  # a training pass leaves out a last, smaller batch (set when compiling)

    @property
    def num_examples(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return steps_per_pass(self.num_examples, self.batch_size, self.ranks, training=self.shuffle,
                              drop_last=self.drop_last)

    def draw_order(self) -> torch.Tensor | None:
        """A new epoch's permutation of the whole set, the same on every rank (None when not shuffling)."""
        if not self.shuffle:
            return None
        return torch.randperm(self.num_examples, device=self.device, generator=self.generator)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(self.draw_order())

    def batches(self, order: torch.Tensor | None, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError


class DeviceLoader(EpochPasses):
    """Iterates (images, labels) batches of an ImageSet held on `device`.

    With `shuffle`, each pass draws a new permutation from `generator` (on the same device), which
    also drives augmentation unless an `augment_generator` is given: the same seed gives the same batches.
    In a data-parallel run (`ranks`), every rank draws the same permutation and takes its part of each
    batch; `batch_size` stays the global batch.
    """

    def __init__(self, dataset: ImageSet, batch_size: int, transform: BatchTransform, device: torch.device,
                 shuffle: bool = False, generator: torch.Generator | None = None, ranks: Ranks = ONE_PROCESS,
                 augment_generator: torch.Generator | None = None):
        super().__init__(batch_size, transform, device, shuffle, generator, ranks, augment_generator)
        self.images = dataset.images.to(device)
        self.labels = dataset.labels.to(device)

    @property
    def num_examples(self) -> int:
        return len(self.labels)

    def batches(self, order: torch.Tensor | None, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's batches of one epoch in `order`, from batch `start_step` on (to finish a resumed epoch)."""
        if order is not None:
            order = order.to(self.device)
        for index in batch_indices(order, len(self.labels), self.batch_size, self.ranks, start_step, self.device,
                                   training=self.shuffle, drop_last=self.drop_last):
            if isinstance(index, torch.Tensor) and len(index) == 0:
                continue  # an evaluation batch smaller than the world size: other ranks take its images
            yield self.transform(self.images[index], self.augment_generator), self.labels[index]
