"""FolderLoader: DeviceLoader's interface over images that DataLoader workers decode from disk.

The training loop cannot tell the two apart: the same `draw_order` permutation from the same seeded
generator, the same `batches(order, start_step)` (any 1-D index tensor, e.g. one rank's shard), the same
BatchTransform on the device. Workers only decode; every random draw stays in the training process.
Workers persist across epochs: the batch sampler's plan is replaced before each pass instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..runtime.distributed import ONE_PROCESS, Ranks, batch_indices
from .loader import EpochPasses
from .transforms import BatchTransform

UNREADABLE = -1  # the label a dataset item carries when its file could not be decoded


def unreadable_position(labels: torch.Tensor) -> int | None:
    """Where in a batch (on the CPU) the first item marked UNREADABLE is, or None."""
    bad = (labels == UNREADABLE).nonzero()
    return int(bad[0]) if len(bad) else None


class PlannedBatches(Sampler[list[int]]):
    """The dataset positions of each batch of the coming pass, set before the pass: one set of workers serves all."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class FolderLoader(EpochPasses):
    """Iterates (images, labels) batches of `dataset` items at `positions` (None = all), decoded by
    `num_workers` processes (0 = in this one) and moved to `device`.

    `dataset` yields (uint8 C x H x W tensor, label), label UNREADABLE for a file it could not decode; its
    `unreadable_error(position)` is then raised. With `shuffle`, each pass draws a new permutation from
    `generator` (on `device`), which also drives augmentation unless an `augment_generator` is given. In a
    data-parallel run (`ranks`) each rank takes its part of every global batch, as DeviceLoader does.
    """

    def __init__(self, dataset: Dataset, positions: torch.Tensor | None, batch_size: int, transform: BatchTransform,
                 device: torch.device, num_workers: int = 0, shuffle: bool = False,
                 generator: torch.Generator | None = None, ranks: Ranks = ONE_PROCESS,
                 augment_generator: torch.Generator | None = None):
        super().__init__(batch_size, transform, device, shuffle, generator, ranks, augment_generator)
        self.dataset = dataset
        self.positions = torch.arange(len(dataset)) if positions is None else positions.cpu()
        self.plan = PlannedBatches()
        self.loader = DataLoader(dataset, batch_sampler=self.plan, num_workers=num_workers,
                                 pin_memory=device.type == "cuda", persistent_workers=num_workers > 0)

    @property
    def num_examples(self) -> int:
        return len(self.positions)

    def batches(self, order: torch.Tensor | None, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of the images at `order` (any 1-D tensor of indices into this loader's images; None = all
        in file order), from batch number `start_step` on (to finish a resumed epoch)."""
        self.plan.batches = self.planned_batches(order, start_step)
        for step, (images, labels) in enumerate(self.loader):
            if (bad := unreadable_position(labels)) is not None:
                raise self.dataset.unreadable_error(self.plan.batches[step][bad])
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            yield self.transform(images, self.augment_generator), labels

    def planned_batches(self, order: torch.Tensor | None, start_step: int) -> list[list[int]]:
        """Dataset positions of this rank's batches; an empty part (a batch smaller than the world size) is left out."""
        count = self.num_examples if order is None else len(order)
        order = None if order is None else order.cpu()
        parts = batch_indices(order, count, self.batch_size, self.ranks, start_step, training=self.shuffle,
                              drop_last=self.drop_last)
        planned = [self.positions[index].tolist() for index in parts]
        return [part for part in planned if part]
