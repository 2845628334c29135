"""MNIST, Fashion-MNIST and CIFAR-10 files: found where they are, read as they are, checked by their content.

Search order, the first folder holding every file wins: `<data.root>/<torchvision's folder>/` (FashionMNIST/raw,
MNIST/raw, cifar-10-batches-py), then `data.root` itself, then the folder of a system package (Debian's
`dataset-fashion-mnist` puts Fashion-MNIST in /usr/share/datasets/fashion-mnist). IDX files are read gzipped or
not (decompressed in memory: nothing is written, least of all into a system folder) and checked by their header,
their size and, for the full original datasets, a SHA-256 of the decompressed bytes, not by the MD5 of a gzip
file (Debian's are recompressed). CIFAR-10's pickled batches are checked with torchvision's MD5s.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
               "batches.meta")
FILES = {"mnist": IDX_FILES, "fashion_mnist": IDX_FILES, "cifar10": CIFAR_FILES}
SUBFOLDERS = {"mnist": "MNIST/raw", "fashion_mnist": "FashionMNIST/raw", "cifar10": "cifar-10-batches-py"}
SYSTEM_FOLDERS = {"fashion_mnist": ("/usr/share/datasets/fashion-mnist",), "mnist": (), "cifar10": ()}
SYSTEM_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}
IDX_MAGIC = {"image": 0x00000803, "label": 0x00000801}  # 0x08 = unsigned bytes; 3 or 1 dimensions
IDX_IMAGE_SIDE = 28
# SHA-256 of the decompressed original files: a file with the original's size must have its bytes
ORIGINALS = {"fashion_mnist": {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}}
ORIGINAL_COUNTS = {"train": 60_000, "t10k": 10_000}


@dataclass(frozen=True)
class Found:
    folder: Path
    paths: dict[str, Path]  # file name -> the file (perhaps name.gz)

    @property
    def origin(self) -> str:
        gzipped = any(p.suffix == ".gz" for p in self.paths.values())
        return f"{self.folder}{' (gzip)' if gzipped else ''}"


class Damaged(Exception):
    """A dataset file whose content is wrong; the message names it and says what is wrong."""


def places(name: str, root: str | Path) -> list[Path]:
    root = Path(root).expanduser()
    return list(dict.fromkeys([root / SUBFOLDERS[name], root, *map(Path, SYSTEM_FOLDERS[name])]))


def present(folder: Path, file: str) -> Path | None:
    """`file`, or `file.gz` (IDX files), in `folder`."""
    for candidate in (folder / file, folder / f"{file}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find(name: str, root: str | Path) -> tuple[Found | None, list[str]]:
    """The first place holding every file of `name`; and what each place held, for the error when none does."""
    seen = []
    for folder in places(name, root):
        paths = {file: present(folder, file) for file in FILES[name]}
        if all(paths.values()):
            return Found(folder, paths), seen
        held = [p.name for p in paths.values() if p is not None]
        seen.append(f"{folder} ({'only ' + ', '.join(held) if held else 'nothing'})")
    return None, seen


def not_found_message(name: str, root: str | Path, seen: list[str]) -> str:
    files = ", ".join(f"{f}[.gz]" for f in FILES[name]) if FILES[name] is IDX_FILES else ", ".join(FILES[name])
    package = SYSTEM_PACKAGES.get(name)
    remedies = [f"put {files} in {Path(root).expanduser() / SUBFOLDERS[name]} (or in data.root itself)"]
    if package:
        remedies.append(f"install Debian's package (apt-get install {package})")
    remedies.append("set data.download=true on a machine with internet")
    return f"{name} not found; looked in {'; '.join(seen)}: {', or '.join(remedies)}"


# --- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------------------------

def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed in memory when it is gzipped."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as err:
        raise Damaged(f"{path}: not a readable gzip file ({' '.join(str(err).split())[:100]})") from err


def idx_array(path: Path, data: bytes, kind: str) -> np.ndarray:
    """The uint8 array an IDX file holds, after checking its header and its size."""
    size = f"{len(data):,} bytes{' decompressed' if path.suffix == '.gz' else ''}"
    if len(data) < 4:
        raise Damaged(f"{path}: too short for an IDX file ({size})")
    magic = int.from_bytes(data[:4], "big")
    if magic != IDX_MAGIC[kind]:
        raise Damaged(f"{path}: bad header (magic 0x{magic:08x}, expected 0x{IDX_MAGIC[kind]:08x} for an IDX {kind} "
                      "file)")
    ndim = magic & 0xFF
    if len(data) < 4 + 4 * ndim:
        raise Damaged(f"{path}: wrong size ({size}, shorter than its own header)")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    if kind == "image" and dims[1:] != (IDX_IMAGE_SIDE, IDX_IMAGE_SIDE):
        raise Damaged(f"{path}: bad header (images of {dims[1]}x{dims[2]}, expected {IDX_IMAGE_SIDE}x{IDX_IMAGE_SIDE})")
    promised = 4 + 4 * ndim + math.prod(dims)
    if len(data) != promised:
        raise Damaged(f"{path}: wrong size ({size}; the header promises {promised:,})")
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)  # writable


def check_original(name: str, file: str, path: Path, data: bytes, count: int, split: str) -> None:
    expected = ORIGINALS.get(name, {}).get(file)
    if expected and count == ORIGINAL_COUNTS[split] and hashlib.sha256(data).hexdigest() != expected:
        raise Damaged(f"{path}: has the size of the original {name} file but not its content (SHA-256 differs)")


def read_idx(name: str, found: Found) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images, labels), "t10k": (images, labels)} from the four IDX files `found`."""
    splits = {}
    for split in ("train", "t10k"):
        arrays = []
        for kind in ("image", "label"):
            file = f"{split}-{kind}s-idx{3 if kind == 'image' else 1}-ubyte"
            path = found.paths[file]
            data = read_bytes(path)
            array = idx_array(path, data, kind)
            check_original(name, file, path, data, len(array), split)
            arrays.append(array)
        images, labels = arrays
        if len(images) != len(labels):
            raise Damaged(f"{found.paths[f'{split}-labels-idx1-ubyte']}: {len(labels):,} labels for the "
                          f"{len(images):,} images of {found.paths[f'{split}-images-idx3-ubyte'].name}")
        splits[split] = (images, labels)
    return splits


def first_damaged_idx(folder: Path) -> str | None:
    """What is wrong with the IDX files that are present in `folder` (one of them missing, say), or None."""
    for file in IDX_FILES:
        path = present(folder, file)
        if path is None:
            continue
        try:
            idx_array(path, read_bytes(path), "image" if "-images-" in file else "label")
        except Damaged as err:
            return str(err)
    return None


# --- CIFAR-10 ------------------------------------------------------------------------------------------------

def read_cifar(found: Found) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """{"train": ..., "test": ...} as (N, 32, 32, 3) uint8 images and labels, and the class names."""
    problem = cifar_problem(found.folder)
    if problem:
        raise Damaged(problem)
    batches = {file: _unpickle(found.paths[file]) for file in CIFAR_FILES}

    def stacked(files) -> tuple[np.ndarray, np.ndarray]:
        images = np.concatenate([np.asarray(batches[f]["data"], dtype=np.uint8) for f in files])
        labels = np.concatenate([np.asarray(batches[f].get("labels", batches[f].get("fine_labels"))) for f in files])
        return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels

    classes = list(batches["batches.meta"]["label_names"])
    return {"train": stacked(CIFAR_FILES[:5]), "test": stacked(["test_batch"])}, classes


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def cifar_problem(folder: Path) -> str | None:
    """The first CIFAR-10 batch in `folder` that fails its checksum or cannot be unpickled, or None.

    Missing files are not a problem here (the caller says what to put where)."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    expected = [*CIFAR10.train_list, *CIFAR10.test_list, [CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
    present_files = [(os.path.join(folder, name), md5) for name, md5 in expected
                     if os.path.isfile(os.path.join(folder, name))]
    for path, md5 in present_files:
        if not check_integrity(path, md5):
            return f"{path}: fails its MD5 checksum (damaged, or not the file of the CIFAR-10 python version)"
    for path, _ in present_files:
        try:
            _unpickle(Path(path))
        except Exception as err:  # UnpicklingError, EOFError, ValueError...
            return f"{path}: cannot be unpickled ({type(err).__name__}: {' '.join(str(err).split())[:100]})"
    return None
