"""Training throughput several ways, in one process, on the same model, data and number of steps.

  seeds     the seed's own loop (scripts/seed_loops.py): d2l's train_ch6 for the book's networks, seed 001's
            run_epoch for its own (lenet5, alexnet_small, resnet*): torchvision's dataset class, per-sample
            transforms as that seed has them, a DataLoader with workers, host syncs every step
  bare      a bare reference loop over one in-memory uint8 tensor: slice, scale, normalize, step;
            no metrics, no logging (the floor of what this hardware does), with the same images, split,
            batch order and initial weights as cnnbench's run, so both compute exactly the same steps
  cnnbench  cnnbench's own training path as `python -m cnnbench` runs it (run(cfg): device loader,
            metrics, progress bar, logging, checkpoints), timed by its own throughput/train_examples_per_s
  compiled  cnnbench with trainer.compile=true (the compilation is printed apart)
  bf16      cnnbench with bf16 autocast (trainer.amp=true): the one way whose arithmetic differs

Every way runs in fp32 unless named otherwise, with the same model memory format (--no-channels-last for NCHW),
the same torch threads, fused SGD where cnnbench would use it (CUDA) and cuDNN benchmarking set per way (on for
bare and cnnbench, as cnnbench sets it; off for the seeds, which never set it). All read the real Fashion-MNIST
when it is found (Debian's dataset-fashion-mnist, or --data-root), else random images of its shape written as its
files: the speed of some models depends on the pixel values, so the ways never use different data.
Prints a table and writes it as JSON.

    python scripts/bench.py [--model lenet] [--data fashion_mnist] [--batch-size 256] [--steps 100]
                            [--device cpu] [--augment] [--resize N] [--json outputs/bench.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from cnnbench import CONF_DIR
from cnnbench.data import input_size
from cnnbench.data.transforms import BatchTransform
from cnnbench.models import create_model

TRAIN_SIZES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "digits": 1437}


def data_config(name: str, resize: int | None, augment: bool, batch_size: int):
    with initialize_config_dir(CONF_DIR, version_base=None):
        cfg = compose("config", overrides=[f"data={name}"])
    with open_dict(cfg):
        cfg.data.resize, cfg.data.augment, cfg.data.batch_size = resize, augment, batch_size
    return cfg.data


def random_dataset(data_cfg, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (count, data_cfg.image_size, data_cfg.image_size, data_cfg.in_chans)
    return rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, data_cfg.num_classes, count)


MODEL_OPTIONS: dict[str, object] = {}  # --option key=value: the model's own options (model.width_div=4 ...)


def make_model(model_name: str, data_cfg, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return create_model(model_name, num_classes=data_cfg.num_classes, in_chans=data_cfg.in_chans,
                        input_size=input_size(data_cfg), **MODEL_OPTIONS).to(device)


def timed_steps(batches, step, warmup: int, steps: int, device: torch.device) -> float:
    """Images per second over `steps` steps after `warmup` untimed ones."""
    seen, start = 0, None
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, seen = time.perf_counter(), 0
        step(x, y)
        seen += len(y)
        if i + 1 == warmup + steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def seeds_loop(model_name, data_cfg, root: Path, images, labels, args, device) -> float:
    """The seed's own loop (d2l's train_ch6 or seed 001's run_epoch) over torchvision's dataset and a DataLoader."""
    import seed_loops

    loop = seed_loops.loop_for(model_name)
    train, _, _ = seed_loops.loaders(loop, root, args.batch_size, args.workers, resize=data_cfg.resize,
                                     augment=data_cfg.augment, pin_memory=device.type == "cuda")
    model = make_model(model_name, data_cfg, device)
    if loop == "d2l":
        seed_loops.d2l_init(model)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    step = seed_loops.training_step(loop, model, seed_loops.optimizer_for(loop, model, lr=0.01), device)
    model.train()
    return timed_steps(cycle(train), step, args.warmup, args.steps, device)


def write_torchvision_files(root: Path, data_cfg, images: np.ndarray, labels: np.ndarray, test_count: int) -> None:
    """The images as Fashion-MNIST IDX files (1 channel) or CIFAR-10 batches (3 channels) under `root`."""
    import pickle
    import struct

    import torchvision.datasets as tvd

    def idx(array: np.ndarray) -> bytes:
        return struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()

    if data_cfg.in_chans == 1:
        raw = root / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for prefix, count in (("train", len(labels)), ("t10k", test_count)):
            (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx(images[:count, ..., 0]))
            (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(labels[:count].astype(np.uint8)))
        return
    folder = root / tvd.CIFAR10.base_folder
    folder.mkdir(parents=True)

    def batch(index) -> bytes:
        return pickle.dumps({"data": images[index].transpose(0, 3, 1, 2).reshape(len(index), -1),
                             "labels": labels[index].tolist()})

    for i, index in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        (folder / f"data_batch_{i}").write_bytes(batch(index))
    (folder / "test_batch").write_bytes(batch(np.arange(test_count)))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    tvd.CIFAR10._check_integrity = lambda self: True  # generated files cannot match the real checksums


def keep_test_images(raw: Path, count: int) -> None:
    """Cut the test files to their first `count` images: the benchmark times training, and cnnbench's way would
    otherwise test a large network on all 10,000 images after its timed steps."""
    for name, item_bytes in (("t10k-images-idx3-ubyte", 28 * 28), ("t10k-labels-idx1-ubyte", 1)):
        path = raw / name
        data = bytearray(path.read_bytes())
        header = 16 if item_bytes > 1 else 8
        data[4:8] = count.to_bytes(4, "big")
        path.write_bytes(bytes(data[: header + count * item_bytes]))


def cycle(iterable):
    while True:
        yield from iterable


def bare_loop(model_name, data_cfg, root: Path, images, labels, args, device) -> float:
    """The floor: the same training images, split, batch order and initial weights as cnnbench's run, on a
    device-resident uint8 tensor sliced, scaled and normalized per batch; no metrics, nothing else.
    Like the run, epoch 1 (args.steps steps) warms up and epoch 2 is timed, each with a fresh permutation."""
    from cnnbench.data import split_train_val
    from cnnbench.data.sources import load_files

    # The same reader as the run: tensor strides decide the memory format convolutions pick.
    full = load_files(dataset_name(data_cfg), str(root), download=False).train
    train, _ = split_train_val(full, args.batch_size, split_seed=data_cfg.split_seed)
    x_all, y_all = train.images.to(device), train.labels.to(device)
    transform = BatchTransform(data_cfg.mean, data_cfg.std, size=data_cfg.resize, augment=data_cfg.augment)
    generator = torch.Generator(device=device).manual_seed(0)
    model = make_model(model_name, data_cfg, device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, **fused(device))
    loss_fn = nn.CrossEntropyLoss()

    def batches():
        while True:
            order = torch.randperm(len(y_all), device=device, generator=generator)
            for step in range(args.steps):
                index = order[step * args.batch_size:(step + 1) * args.batch_size]
                yield transform(x_all[index], generator), y_all[index]

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    model.train()
    return timed_steps(batches(), step, args.steps, args.steps, device)


def fused(device: torch.device) -> dict:
    """What cnnbench's optimizer gets on this device (engine/setup.py's fused_if_possible)."""
    return {"fused": True} if device.type == "cuda" else {}


@contextlib.contextmanager
def quiet():
    """The inner run's console goes nowhere: the benchmark prints its own table."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def cnnbench_run(model_name, data_cfg, root: Path, images, labels, args, device, compile_: bool = False,
                 amp: bool = False) -> float:
    """run(cfg) on the same files: epoch 1 warms up, epoch 2 (args.steps steps) is timed by the run itself."""
    from cnnbench.train import run

    overrides = [f"model={model_name}", *(f"model.{k}={v}" for k, v in MODEL_OPTIONS.items()),
                 f"data={dataset_name(data_cfg)}", f"trainer.channels_last={args.channels_last}",
                 f"data.root={root}", "data.download=false",
                 f"data.val_split={args.batch_size}", f"data.batch_size={args.batch_size}",
                 f"data.augment={data_cfg.augment}", f"data.resize={data_cfg.resize or 'null'}",
                 f"data.mean={list(data_cfg.mean)}", f"data.std={list(data_cfg.std)}",
                 "optimizer=sgd", "optimizer.lr=0.01", "scheduler=none", "trainer.epochs=2",
                 f"trainer.max_steps_per_epoch={args.steps}", f"trainer.device={device}", "trainer.patience=0",
                 f"trainer.compile={str(compile_).lower()}", f"trainer.amp={str(amp).lower()}",
                 "console.config=none"]
    with initialize_config_dir(CONF_DIR, version_base=None):
        cfg = compose("config", overrides=overrides)
    with tempfile.TemporaryDirectory() as out, open_dict(cfg), quiet():
        cfg.output_dir = out
        summary = run(cfg)  # its console (with a tensorboard hint to a folder about to go) is not the benchmark's
    if compile_:
        print(f"torch.compile: first step (compilation) {summary['time/first_step_s']:.1f}s", flush=True)
    return summary["throughput/train_examples_per_s"]


def compiled_run(model_name, data_cfg, root: Path, images, labels, args, device) -> float:
    """cnnbench with trainer.compile=true; the compilation falls in the untimed first epoch and is printed apart."""
    return cnnbench_run(model_name, data_cfg, root, images, labels, args, device, compile_=True)


def real_files(data_root: Path | None) -> Path | None:
    """The folder holding the real Fashion-MNIST, found as cnnbench finds it; None if nowhere."""
    from cnnbench.data.files import find

    found, _ = find("fashion_mnist", data_root or "data")
    return found.folder if found else None


def dataset_name(data_cfg) -> str:
    """The torchvision dataset whose files write_torchvision_files made for this shape."""
    return "fashion_mnist" if data_cfg.in_chans == 1 else "cifar10"


def bf16_run(model_name, data_cfg, root: Path, images, labels, args, device) -> float:
    """cnnbench with bf16 autocast (trainer.amp=true, the default on CUDA): its gain over fp32, as its own row."""
    return cnnbench_run(model_name, data_cfg, root, images, labels, args, device, amp=True)


WAYS = {"seeds": seeds_loop, "bare": bare_loop, "cnnbench": cnnbench_run, "compiled": compiled_run, "bf16": bf16_run}
CUDNN_BENCHMARK = {"seeds": False}  # cnnbench's run sets it (on) itself; bare follows cnnbench


def set_cuda_defaults(way: str, device: torch.device) -> None:
    """Each way starts from the same process-wide settings, whatever the way before it set."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = CUDNN_BENCHMARK.get(way, True)
        torch.set_float32_matmul_precision("highest" if way == "seeds" else "high")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--data", default="fashion_mnist", help="whose shape the random data take")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per way")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--resize", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the seeds' loop")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                        help="NCHW instead of channels_last for the bare loop and cnnbench (trainer.channels_last)")
    parser.add_argument("--ways", default="seeds,bare,cnnbench", help=f"any of {','.join(WAYS)}")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="a folder with the real Fashion-MNIST files (default: data/ or Debian's package)")
    parser.add_argument("--random-data", action="store_true", help="random images even when the real data is found")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the median is reported")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a model option, e.g. --option width_div=4 (VGG) or --option stem=imagenet (ResNet)")
    parser.add_argument("--json", default="outputs/bench.json")
    args = parser.parse_args()
    for option in args.option:
        key, _, value = option.partition("=")
        MODEL_OPTIONS[key] = int(value) if value.isdigit() else value

    device = torch.device(args.device)
    data_cfg = data_config(args.data, args.resize, args.augment, args.batch_size)
    count = min(TRAIN_SIZES.get(args.data, 60000), (args.steps + args.warmup) * args.batch_size)
    root = Path(tempfile.mkdtemp(prefix="cnnbench-bench-"))
    real = None if args.random_data or args.data != "fashion_mnist" else real_files(args.data_root)
    if real is not None:
        import seed_loops

        seed_loops.prepare_root(real, root)
        keep_test_images(root / "FashionMNIST" / "raw", args.batch_size)
        images = labels = None
    else:
        images, labels = random_dataset(data_cfg, count)
        write_torchvision_files(root, data_cfg, images, labels, test_count=args.batch_size)
    print(f"data: {'the real Fashion-MNIST from ' + str(real) if real else 'random images of its shape'}", flush=True)
    ways = args.ways.split(",")
    samples: dict[str, list[float]] = {way: [] for way in ways}
    for round_ in range(1, args.rounds + 1):  # interleaved, so a slow spell of a shared machine hits every way
        for way in ways:
            set_cuda_defaults(way, device)
            samples[way].append(WAYS[way](args.model, data_cfg, root, images, labels, args, device))
            print(f"round {round_}/{args.rounds} {way:>9}: {samples[way][-1]:>10,.0f} images/s", flush=True)
    results = {way: statistics.median(values) for way, values in samples.items()}

    report = {
        "model": args.model, "input_shape": [data_cfg.in_chans, *[data_cfg.resize or data_cfg.image_size] * 2],
        "batch_size": args.batch_size, "steps": args.steps, "augment": args.augment, "device": str(device),
        "channels_last": args.channels_last,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "images_per_s": results, "rounds": args.rounds, "samples": samples,
        "data": str(real) if real else "random", "seeds_loop": __import__("seed_loops").loop_for(args.model),
        "workers": args.workers,
    }
    if "seeds" in results:
        report["vs_seeds"] = {k: v / results["seeds"] for k, v in results.items()}
    if "bare" in results:
        report["vs_bare"] = {k: v / results["bare"] for k, v in results.items()}
    print_table(report)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(root)
    print(f"wrote {args.json}")


def print_table(report: dict) -> None:
    print(f"\n{report['model']}, batch {report['batch_size']}, {report['steps']} timed steps, "
          f"median of {report['rounds']} rounds, "
          f"augment={report['augment']}, channels_last={report['channels_last']}, device {report['device']}, "
          f"torch {report['torch']}, "
          f"{report['threads']} threads")
    print(f"{'way':>9} {'images/s':>10} {'vs seeds':>9} {'vs bare':>8}")
    for way, rate in report["images_per_s"].items():
        vs_seeds = report.get("vs_seeds", {}).get(way)
        vs_bare = report.get("vs_bare", {}).get(way)
        print(f"{way:>9} {rate:>10,.0f} {vs_seeds and f'{vs_seeds:.2f}x' or '-':>9} "
              f"{vs_bare and f'{vs_bare:.2f}x' or '-':>8}")


if __name__ == "__main__":
    main()
