"""Dataset sources: each returns its train and test sets as uint8 NCHW tensors plus int64 labels.

The torchvision datasets are read with torchvision's own readers (IDX files for MNIST and
Fashion-MNIST, pickled batches for CIFAR-10) and then kept as whole tensors; nothing here touches PIL.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import struct
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
# name -> (in_chans, image_size, num_classes) of the images a file-backed source holds
NATIVE_FORMATS = {"mnist": (1, 28, 10), "fashion_mnist": (1, 28, 10), "cifar10": (3, 32, 10), "digits": (1, 28, 10)}
BUILTIN_SOURCES = ("digits", "synthetic")
STREAMED_SOURCES = ("image_folder",)  # read from disk batch by batch (data/folder.py), never one tensor
SOURCE_NAMES = (*TORCHVISION_DATASETS, *BUILTIN_SOURCES, *STREAMED_SOURCES)


def load_source(data_cfg) -> Source:
    name = data_cfg.name
    if name in TORCHVISION_DATASETS:
        return load_torchvision(name, data_cfg.root, bool(data_cfg.download))
    if name == "digits":
        return load_digits()
    if name == "synthetic":
        return make_synthetic(data_cfg)
    if name in STREAMED_SOURCES:
        raise ConfigError(f"data.name='{name}' is streamed from disk: build_data gives its loaders, not one tensor")
    raise ConfigError(f"data.name='{name}' is not a known dataset; choose one of: {', '.join(SOURCE_NAMES)}")


def _as_nchw_uint8(data) -> torch.Tensor:
    images = torch.as_tensor(data)
    if images.ndim == 3:  # MNIST-style (N, H, W)
        return images.unsqueeze(1).contiguous()
    return images.permute(0, 3, 1, 2).contiguous()  # CIFAR-style (N, H, W, C)


def load_torchvision(name: str, root: str, download: bool) -> Source:
    import torchvision.datasets as tvd

    class_name, folder, files = TORCHVISION_DATASETS[name]
    where = os.path.join(root, folder)
    # With files missing and download=true, torchvision fetches and re-extracts all four IDX files, so
    # they are checked afterwards; otherwise torchvision reads the files as they are: check them first.
    fetching = download and not all(os.path.isfile(os.path.join(where, f)) for f in files)
    if name in IDX_DATASETS and not fetching:
        _raise_if_damaged(idx_problem(where, files))
    dataset_cls = getattr(tvd, class_name)
    try:
        train = dataset_cls(root, train=True, download=download)
        test = dataset_cls(root, train=False, download=download)
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError, ValueError...
        log.debug("loading %s from %s failed", name, root, exc_info=True)
        raise _loading_error(name, root, download, err) from err
    if name in IDX_DATASETS and fetching:
        _raise_if_damaged(idx_problem(where, files))
    source = Source(
        train=ImageSet(_as_nchw_uint8(train.data), torch.as_tensor(train.targets, dtype=torch.int64)),
        test=ImageSet(_as_nchw_uint8(test.data), torch.as_tensor(test.targets, dtype=torch.int64)),
        classes=list(train.classes),
    )
    for split, images in (("train", source.train), ("t10k" if name in IDX_DATASETS else "test", source.test)):
        _raise_if_damaged(label_problem(images.labels, len(source.classes), where, split))
    return source


def label_problem(labels: torch.Tensor, num_classes: int, where: str, split: str) -> str | None:
    """Labels outside 0..num_classes-1 (a damaged or foreign labels file), named, or None."""
    bad = (labels < 0) | (labels >= num_classes)
    if not bool(bad.any()):
        return None
    value = int(labels[bad][0])
    return (f"{where}: the {split} labels hold {value} (at image {int(bad.nonzero()[0])}), but there are "
            f"{num_classes} classes (0 to {num_classes - 1})")


REPLACE_HINT = "replace it with the original file (uncompressed), or delete it and set data.download=true"


def _raise_if_damaged(problem: str | None) -> None:
    if problem:
        raise DataError(f"{problem}; {REPLACE_HINT}")


def _loading_error(name: str, root: str, download: bool, err: Exception) -> DataError:
    _, folder, files = TORCHVISION_DATASETS[name]
    where = os.path.join(root, folder)
    reason = " ".join(str(err).split())[:200]  # torchvision's messages span lines
    damaged = idx_problem(where, files) if name in IDX_DATASETS else cifar_problem(where)
    if damaged and download:
        return DataError(f"{damaged}, and downloading a fresh copy failed ({type(err).__name__}: {reason}); "
                         f"check the network, or replace the file by hand and set data.download=false")
    if damaged:
        return DataError(f"{damaged}; {REPLACE_HINT}")
    if download:
        return DataError(
            f"downloading {name} into {where} failed ({type(err).__name__}: {reason}); check the network, "
            f"or put {', '.join(files)} in {where} by hand and set data.download=false"
        )
    problem = "not found" if "not found" in reason else f"unreadable ({reason})"
    return DataError(
        f"{name} {problem} in {where}: put {', '.join(files)} there (uncompressed; data.root={root}), "
        "or set data.download=true"
    )


# --- damaged files: IDX headers and sizes (MNIST, Fashion-MNIST), CIFAR-10 checksums and pickles -----

IDX_DATASETS = ("mnist", "fashion_mnist")
IDX_MAGIC = {"image": 0x00000803, "label": 0x00000801}  # 0x08 = unsigned bytes; 3 or 1 dimensions
IDX_IMAGE_SIDE = 28


def idx_problem(folder: str, files: list[str]) -> str | None:
    """What is wrong with the IDX files present in `folder` (one line naming the file), or None."""
    counts = {}
    for name in files:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            dims_or_problem = _idx_dims(path, "image" if "-images-" in name else "label")
            if isinstance(dims_or_problem, str):
                return dims_or_problem
            counts[name] = dims_or_problem[0]
    for split in ("train", "t10k"):
        images, labels = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
        if images in counts and labels in counts and counts[images] != counts[labels]:
            return (f"{os.path.join(folder, labels)}: {counts[labels]:,} labels for the "
                    f"{counts[images]:,} images of {images}")
    return None


def _idx_dims(path: str, kind: str) -> tuple[int, ...] | str:
    """The dimensions an IDX file's header declares, or what is wrong with the file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(4)
        magic = int.from_bytes(head, "big")
        ndim = magic & 0xFF
        dims_bytes = f.read(4 * ndim) if len(head) == 4 else b""
    expected = IDX_MAGIC[kind]
    if len(head) < 4:
        return f"{path}: too short for an IDX file ({size:,} bytes)"
    if magic != expected:
        return f"{path}: bad header (magic 0x{magic:08x}, expected 0x{expected:08x} for an IDX {kind} file)"
    if len(dims_bytes) < 4 * ndim:
        return f"{path}: wrong size ({size:,} bytes, shorter than its own header)"
    dims = struct.unpack(f">{ndim}I", dims_bytes)
    if kind == "image" and dims[1:] != (IDX_IMAGE_SIDE, IDX_IMAGE_SIDE):
        return (f"{path}: bad header (images of {dims[1]}x{dims[2]}, expected "
                f"{IDX_IMAGE_SIDE}x{IDX_IMAGE_SIDE})")
    promised = 4 + 4 * ndim + math.prod(dims)
    if size != promised:
        return f"{path}: wrong size ({size:,} bytes; the header promises {promised:,})"
    return dims


def cifar_problem(folder: str) -> str | None:
    """The first CIFAR-10 batch in `folder` that fails its checksum or cannot be unpickled, or None.

    Missing files are not a problem here (the caller says what to put where)."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    expected = [*CIFAR10.train_list, *CIFAR10.test_list, [CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
    present = [(os.path.join(folder, name), md5) for name, md5 in expected
               if os.path.isfile(os.path.join(folder, name))]
    for path, md5 in present:
        if not check_integrity(path, md5):
            return f"{path}: fails its MD5 checksum (damaged, or not the file of the CIFAR-10 python version)"
    for path, _ in present:
        try:
            with open(path, "rb") as f:
                pickle.load(f, encoding="latin1")
        except Exception as err:  # UnpicklingError, EOFError, ValueError...
            return f"{path}: cannot be unpickled ({type(err).__name__}: {' '.join(str(err).split())[:100]})"
    return None


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
