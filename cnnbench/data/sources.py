"""Dataset sources: each returns its train and test sets as uint8 NCHW tensors plus int64 labels.

MNIST, Fashion-MNIST and CIFAR-10 are read from their files where they are found (data/files.py: gzipped or
not, under data.root or a system package's folder), downloaded by torchvision when asked; they are then kept
as whole tensors. The built-in digits and the synthetic set need no files. Nothing here touches PIL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from . import files
from .settings import DataSettings

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
    origin: str | None = None  # where the files were read from ("/usr/share/datasets/fashion-mnist (gzip)")


FILE_DATASETS = tuple(files.FILES)  # mnist, fashion_mnist, cifar10
# name -> (in_chans, image_size, num_classes) of the images a file-backed source holds
NATIVE_FORMATS = {"mnist": (1, 28, 10), "fashion_mnist": (1, 28, 10), "cifar10": (3, 32, 10), "digits": (1, 28, 10)}
BUILTIN_SOURCES = ("digits", "synthetic")
STREAMED_SOURCES = ("image_folder",)  # read from disk batch by batch (data/folder.py), never one tensor
SOURCE_NAMES = (*FILE_DATASETS, *BUILTIN_SOURCES, *STREAMED_SOURCES)


def load_source(data: DataSettings) -> Source:
    name = data.name
    if name in FILE_DATASETS:
        return load_files(name, data.root, bool(data.download))
    if name == "digits":
        return load_digits()
    if name == "synthetic":
        return make_synthetic(data)
    if name in STREAMED_SOURCES:
        raise ConfigError(f"data.name='{name}' is streamed from disk: build_data gives its loaders, not one tensor")
    raise ConfigError(f"data.name='{name}' is not a known dataset; choose one of: {', '.join(SOURCE_NAMES)}")


def _as_nchw_uint8(data) -> torch.Tensor:
    images = torch.from_numpy(np.ascontiguousarray(data))
    if images.ndim == 3:  # MNIST-style (N, H, W)
        return images.unsqueeze(1).contiguous()
    return images.permute(0, 3, 1, 2).contiguous()  # CIFAR-style (N, H, W, C)


REPLACE_HINT = "replace it with the original file (gzipped or not), or delete it and set data.download=true"


def load_files(name: str, root: str, download: bool) -> Source:
    """MNIST, Fashion-MNIST or CIFAR-10 from where its files are (data/files.py), downloaded first if asked."""
    found, seen = files.find(name, root)
    if found is None:
        if not download:
            raise DataError(files.not_found_message(name, root, seen))
        found = _download(name, root)
    try:
        if name == "cifar10":
            splits, classes = files.read_cifar(found)
        else:
            splits, classes = files.read_idx(name, found), _torchvision_class(name).classes
    except files.Damaged as err:
        raise DataError(f"{err}; {REPLACE_HINT}") from err
    (train_images, train_labels), (test_images, test_labels) = splits.values()
    source = Source(train=ImageSet(_as_nchw_uint8(train_images), torch.as_tensor(train_labels, dtype=torch.int64)),
                    test=ImageSet(_as_nchw_uint8(test_images), torch.as_tensor(test_labels, dtype=torch.int64)),
                    classes=list(classes), origin=found.origin)
    for split, images in zip(splits, (source.train, source.test), strict=True):
        _raise_if_damaged(label_problem(images.labels, len(source.classes), found.folder, split))
    return source


def _torchvision_class(name: str):
    import torchvision.datasets as tvd

    return {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]


def _download(name: str, root: str) -> files.Found:
    """torchvision's download into <root>/<its folder>; a damaged file beside missing ones is named."""
    where = Path(root).expanduser() / files.SUBFOLDERS[name]
    try:
        for train in (True, False):
            _torchvision_class(name)(str(Path(root).expanduser()), train=train, download=True)
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError, ValueError...
        log.debug("downloading %s into %s failed", name, root, exc_info=True)
        reason = " ".join(str(err).split())[:200]  # torchvision's messages span lines
        damaged = files.cifar_problem(where) if name == "cifar10" else files.first_damaged_idx(where)
        if damaged:
            raise DataError(f"{damaged}, and downloading a fresh copy failed ({type(err).__name__}: {reason}); check "
                            "the network, or replace the file by hand and set data.download=false") from err
        raise DataError(f"downloading {name} into {where} failed ({type(err).__name__}: {reason}); check the "
                        f"network, or put the files there by hand and set data.download=false") from err
    found, _ = files.find(name, root)
    if found is None:
        raise DataError(f"downloading {name} into {where} left files missing; delete the folder and try again")
    return found


def label_problem(labels: torch.Tensor, num_classes: int, where, split: str) -> str | None:
    """Labels outside 0..num_classes-1 (a damaged or foreign labels file), named, or None."""
    bad = (labels < 0) | (labels >= num_classes)
    if not bool(bad.any()):
        return None
    value = int(labels[bad][0])
    return (f"{where}: the {split} labels hold {value} (at image {int(bad.nonzero()[0])}), but there are "
            f"{num_classes} classes (0 to {num_classes - 1})")


def _raise_if_damaged(problem: str | None) -> None:
    if problem:
        raise DataError(f"{problem}; {REPLACE_HINT}")


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
        origin="scikit-learn's digits (built in)",
    )


def make_synthetic(data: DataSettings) -> Source:
    """Class templates plus Gaussian noise; deterministic for a given `data.seed`."""
    gen = torch.Generator().manual_seed(int(data.seed))
    shape = (int(data.in_chans), int(data.image_size), int(data.image_size))
    num_classes = int(data.num_classes)
    templates = torch.rand((num_classes, *shape), generator=gen)

    def draw(count: int) -> ImageSet:
        labels = torch.randint(num_classes, (count,), generator=gen)
        noise = torch.randn((count, *shape), generator=gen) * float(data.noise)
        images = ((templates[labels] + noise).clamp(0, 1) * 255).round().to(torch.uint8)
        return ImageSet(images, labels)

    train = draw(int(data.num_train))
    test = draw(int(data.num_test))
    return Source(train=train, test=test, classes=[f"class_{i}" for i in range(num_classes)],
                  origin=f"generated (data.seed={int(data.seed)})")
