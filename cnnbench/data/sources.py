"""Dataset sources: each returns its train and test sets as uint8 NCHW tensors plus int64 labels.

The torchvision datasets are read with torchvision's own readers (IDX files for MNIST and
Fashion-MNIST, pickled batches for CIFAR-10) and then kept as whole tensors; nothing here touches PIL.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index])


@dataclass
class Source:
    train: ImageSet
    test: ImageSet
    classes: list[str]


# name -> (torchvision class name, folder under root, files a user must provide offline)
TORCHVISION_DATASETS = {
    "mnist": ("MNIST", "MNIST/raw", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw", ["train-images-idx3-ubyte",
                                                           "train-labels-idx1-ubyte",
                                                           "t10k-images-idx3-ubyte",
                                                           "t10k-labels-idx1-ubyte"]),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", ["data_batch_1", "...", "data_batch_5", "test_batch",
                                                   "batches.meta"]),
}
BUILTIN_SOURCES = ("digits", "synthetic")
SOURCE_NAMES = (*TORCHVISION_DATASETS, *BUILTIN_SOURCES)


def load_source(data_cfg) -> Source:
    name = data_cfg.name
    if name in TORCHVISION_DATASETS:
        return load_torchvision(name, data_cfg.root, bool(data_cfg.download))
    if name == "digits":
        return load_digits()
    if name == "synthetic":
        return make_synthetic(data_cfg)
    raise ConfigError(f"data.name='{name}' is not a known dataset; choose one of: {', '.join(SOURCE_NAMES)}")


def _as_nchw_uint8(data) -> torch.Tensor:
    images = torch.as_tensor(data)
    if images.ndim == 3:  # MNIST-style (N, H, W)
        return images.unsqueeze(1).contiguous()
    return images.permute(0, 3, 1, 2).contiguous()  # CIFAR-style (N, H, W, C)


def load_torchvision(name: str, root: str, download: bool) -> Source:
    import torchvision.datasets as tvd

    class_name, folder, files = TORCHVISION_DATASETS[name]
    dataset_cls = getattr(tvd, class_name)
    where = os.path.join(root, folder)
    try:
        train = dataset_cls(root, train=True, download=download)
        test = dataset_cls(root, train=False, download=download)
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError, ValueError...
        log.debug("loading %s from %s failed", name, root, exc_info=True)
        reason = " ".join(str(err).split())[:200]  # torchvision's messages span lines
        if download:
            raise DataError(
                f"downloading {name} into {where} failed ({type(err).__name__}: {reason}); check the network, "
                f"or put {', '.join(files)} in {where} by hand and set data.download=false"
            ) from err
        problem = "not found" if "not found" in reason else f"unreadable ({reason})"
        raise DataError(
            f"{name} {problem} in {where}: put {', '.join(files)} there (uncompressed; data.root={root}), "
            "or set data.download=true"
        ) from err
    return Source(
        train=ImageSet(_as_nchw_uint8(train.data), torch.as_tensor(train.targets, dtype=torch.int64)),
        test=ImageSet(_as_nchw_uint8(test.data), torch.as_tensor(test.targets, dtype=torch.int64)),
        classes=list(train.classes),
    )


DIGITS_TEST_SIZE = 360


def load_digits() -> Source:
    """scikit-learn's 8x8 digits (values 0..16), scaled to 20x20 and centred in 28x28 like MNIST."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(20, 20), mode="bilinear", align_corners=False)
    images = F.pad(images, (4, 4, 4, 4))
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    full = ImageSet(images, labels)
    return Source(
        train=full.subset(order[DIGITS_TEST_SIZE:]),
        test=full.subset(order[:DIGITS_TEST_SIZE]),
        classes=[str(d) for d in range(10)],
    )


def make_synthetic(data_cfg) -> Source:
    """Class templates plus Gaussian noise; deterministic for a given `data.seed`."""
    gen = torch.Generator().manual_seed(int(data_cfg.seed))
    shape = (int(data_cfg.in_chans), int(data_cfg.image_size), int(data_cfg.image_size))
    num_classes = int(data_cfg.num_classes)
    templates = torch.rand((num_classes, *shape), generator=gen)

    def draw(count: int) -> ImageSet:
        labels = torch.randint(num_classes, (count,), generator=gen)
        noise = torch.randn((count, *shape), generator=gen) * float(data_cfg.noise)
        images = ((templates[labels] + noise).clamp(0, 1) * 255).round().to(torch.uint8)
        return ImageSet(images, labels)

    train = draw(int(data_cfg.num_train))
    test = draw(int(data_cfg.num_test))
    return Source(train=train, test=test, classes=[f"class_{i}" for i in range(num_classes)])
