"""The seeds' own training loops, as each seed runs them, for the benchmarks to compare against.

  d2l      seeds 000/003, d2l's `load_data_fashion_mnist` + `train_ch6`: torchvision's FashionMNIST with
           `ToTensor` only (and `Resize` first where the book upsamples), a shuffled DataLoader, Xavier-uniform
           init of every Linear and Conv2d, plain SGD, and three host syncs per step (its Accumulator's `float`)
  seed001  seed 001's section 10: `ToTensor` + `Normalize((0.2860,), (0.3530,))`, flip + RandomCrop(28, pad 4)
           when augmenting, random_split 54,000/6,000 (seed 42), DataLoader(shuffle, pin_memory), SGD lr 0.1
           momentum 0.9 nesterov weight decay 1e-4, label smoothing 0.1, grad-norm clip 1.0, `.item()` twice per step

Both read the same real files cnnbench reads: `prepare_root` decompresses them into a scratch folder laid out as
torchvision expects (`<root>/FashionMNIST/raw/`), since torchvision reads only uncompressed IDX files there.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

SEED_LOOPS = ("d2l", "seed001")
SEED001_MODELS = ("lenet5", "alexnet_small", "resnet18", "resnet34", "resnet50")  # the rest are the book's
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def loop_for(model_name: str) -> str:
    return "seed001" if model_name in SEED001_MODELS else "d2l"


def prepare_root(found: Path, scratch: Path) -> Path:
    """A torchvision root with the four Fashion-MNIST files of `found` (gzipped or not), uncompressed."""
    raw = scratch / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        plain, packed = found / name, found / f"{name}.gz"
        if plain.is_file():
            shutil.copyfile(plain, raw / name)
        else:
            with gzip.open(packed) as source, open(raw / name, "wb") as target:
                shutil.copyfileobj(source, target)
    return scratch


def transform(loop: str, resize: int | None, augment: bool, train: bool = True):
    import torchvision.transforms as T

    if loop == "d2l":
        return T.Compose([*([T.Resize(resize)] if resize else []), T.ToTensor()])
    steps = [T.RandomHorizontalFlip(), T.RandomCrop(28, padding=4)] if augment and train else []
    return T.Compose([*([T.Resize(resize)] if resize else []), *steps, T.ToTensor(), T.Normalize((0.2860,), (0.3530,))])


def loaders(loop: str, root: Path, batch_size: int, workers: int, resize: int | None = None, augment: bool = False,
            pin_memory: bool = False, eval_batch: int = 256):
    """(train, val, test) DataLoaders as the seed builds them; d2l validates on the test set (val is None)."""
    import torchvision.datasets as tvd
    from torch.utils.data import DataLoader, Subset, random_split

    train_full = tvd.FashionMNIST(str(root), train=True, transform=transform(loop, resize, augment))
    test = tvd.FashionMNIST(str(root), train=False, transform=transform(loop, resize, augment, train=False))
    test_loader = DataLoader(test, eval_batch, shuffle=False, num_workers=workers)
    if loop == "d2l":
        return DataLoader(train_full, batch_size, shuffle=True, num_workers=workers), None, test_loader
    train_part, val_part = random_split(train_full, [54000, 6000], generator=torch.Generator().manual_seed(42))
    val_plain = Subset(tvd.FashionMNIST(str(root), train=True, transform=transform(loop, resize, augment, False)),
                       val_part.indices)  # the seed's val images carry its train transform; accuracy needs none
    return (DataLoader(train_part, batch_size, shuffle=True, num_workers=workers, pin_memory=pin_memory),
            DataLoader(val_plain, eval_batch, shuffle=False, num_workers=workers), test_loader)


def d2l_init(model: nn.Module) -> None:
    for layer in model.modules():
        if type(layer) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(layer.weight)


def optimizer_for(loop: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    if loop == "d2l":
        return torch.optim.SGD(model.parameters(), lr=lr)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4, nesterov=True)


def training_step(loop: str, model: nn.Module, optimizer, device: torch.device) -> Callable:
    """One step of the seed's loop, its per-step host syncs included."""
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1 if loop == "seed001" else 0.0)
    totals = [0.0, 0.0, 0.0]

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        if loop == "seed001":
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        with torch.no_grad():
            totals[0] += float(loss * len(x)) if loop == "d2l" else loss.item() * len(x)
            totals[1] += float((logits.argmax(1) == y).sum())
            totals[2] += len(x)

    return step


@torch.no_grad()
def accuracy(model: nn.Module, loader, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    model.train()
    return correct / total
