"""data=image_folder: a folder of PNGs trains end to end, the streaming loader serves exactly the images asked
for, the config is completed from the folder, and a bad folder stops the run with one line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image
from rich.console import Console

import cnnbench.data.folder as folder
from cnnbench import CONF_DIR
from cnnbench.config import data_settings, prepare_config, validate_config
from cnnbench.data import build_data
from cnnbench.data.images import to_mode
from cnnbench.errors import ConfigError, DataError
from cnnbench.evaluate import evaluate_run
from cnnbench.inspect import run as inspect_run
from cnnbench.train import run
from tests.conftest import FOLDER_CLASSES, one_line_error, write_image_folder

CPU = torch.device("cpu")
FOLDER_RUN = ["model=lenet5", "data=image_folder", "data.image_size=16", "data.num_workers=0", "trainer.epochs=1",
              "trainer.device=cpu"]
GIVEN_NORMALIZATION = ["data.mean=[0.5,0.5,0.5]", "data.std=[0.25,0.25,0.25]"]


@pytest.fixture
def folder_cfg(make_cfg, image_folder_root):
    """A validated and prepared (so completed) image_folder config over `root` (default: the 3-class RGB folder)."""

    def _make(*overrides: str, root=image_folder_root):
        cfg = make_cfg([*FOLDER_RUN, f"data.root={root}", *overrides])
        validate_config(cfg)
        return prepare_config(cfg)

    return _make


def test_one_epoch_run_takes_classes_and_channels_from_the_folder(folder_cfg, tmp_path):
    cfg = folder_cfg()
    assert (cfg.data.in_chans, cfg.data.num_classes) == (3, 3)
    summary = run(cfg)
    assert summary["status"] == "completed"
    assert list(summary["test/per_class_acc"]) == list(FOLDER_CLASSES)
    assert summary["input_shape"] == [3, 16, 16]
    assert (summary["num_train"], summary["num_val"], summary["num_test"]) == (30, 12, 12)
    assert summary["val_is_test"]
    # `python -m cnnbench.evaluate run=<dir>` rebuilds the same loaders from the config saved in best.pt
    metrics = evaluate_run(tmp_path / "run", [], Console(quiet=True))
    assert metrics["test/acc"] == summary["test/acc"]
    assert list(metrics["test/per_class_acc"]) == list(FOLDER_CLASSES)


def test_inspect_reads_channels_and_classes_from_the_folder(image_folder_root):
    with initialize_config_dir(CONF_DIR, version_base=None):
        cfg = compose("inspect", overrides=["data=image_folder", f"data.root={image_folder_root}",
                                            "inspect.format=json"])
    report = inspect_run(cfg)
    assert report["input_shape"] == [1, 3, 64, 64]
    assert report["layers"][-1]["output_shape"] == [1, 3]


def test_cli_run_with_two_workers_prints_the_class_names(cli_main, image_folder_root, tmp_path):
    result = cli_main(*FOLDER_RUN, f"data.root={image_folder_root}", "data.num_workers=2",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr
    table = result.stdout[result.stdout.index("per-class test accuracy"):]
    rows = [line for line in table.splitlines() if any(name in line for name in FOLDER_CLASSES)]
    assert [next(n for n in FOLDER_CLASSES if n in row) for row in rows] == list(FOLDER_CLASSES)
    assert "/ 4" in rows[0]  # 4 val (= test) images per class


def test_batches_yield_exactly_the_requested_images(folder_cfg):
    cfg = folder_cfg("data.batch_size=4", "data.normalize=false")
    loader = build_data(data_settings(cfg), CPU, seed=0).train
    order = torch.tensor([29, 3, 17, 0, 11, 25, 8, 14, 2])  # a subset of positions, like one rank's shard
    batches = list(loader.batches(order, start_step=1))
    assert [len(labels) for _, labels in batches] == [4, 1]
    wanted = loader.positions[order[4:]].tolist()
    assert torch.cat([labels for _, labels in batches]).tolist() == [loader.dataset.targets[p] for p in wanted]
    decoded = torch.stack([loader.dataset[p][0] for p in wanted])
    assert torch.equal((torch.cat([images for images, _ in batches]) * 255).round().to(torch.uint8), decoded)
    assert list(loader.batches(order, start_step=3)) == []
    in_file_order = torch.cat([labels for _, labels in loader.batches(None)])
    assert in_file_order.tolist() == loader.dataset.targets


def test_images_are_resized_to_image_size_when_decoded_then_to_resize(folder_cfg):
    images, _ = next(iter(build_data(data_settings(folder_cfg("data.image_size=12")), CPU, seed=0).train))
    assert images.shape[1:] == (3, 12, 12)
    data = build_data(data_settings(folder_cfg("data.image_size=12", "data.resize=20")), CPU, seed=0)
    assert next(iter(data.val))[0].shape[1:] == (3, 20, 20) and data.input_shape == (3, 20, 20)


def epoch(data) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(data.train)


def test_the_same_seed_gives_the_same_batches_with_or_without_workers(folder_cfg):
    cfg = folder_cfg("data.augment=true", "data.batch_size=8")
    first = epoch(build_data(data_settings(cfg), CPU, seed=0))
    with_worker = build_data(data_settings(folder_cfg("data.augment=true", "data.batch_size=8", "data.num_workers=1")),
                             CPU, seed=0)
    for (images, labels), (images_w, labels_w) in zip(first, epoch(with_worker), strict=True):
        assert torch.equal(images, images_w) and torch.equal(labels, labels_w)
    other_seed = epoch(build_data(data_settings(cfg), CPU, seed=1))
    assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in other_seed]))


def test_persistent_workers_serve_a_new_pass_after_an_abandoned_one(folder_cfg):
    loader = build_data(data_settings(folder_cfg("data.batch_size=4", "data.num_workers=1")), CPU, seed=0).train
    next(iter(loader))  # as trainer.max_steps_per_epoch leaves a pass: the worker still holds prefetched batches
    order = loader.draw_order()
    labels = torch.cat([labels for _, labels in loader.batches(order)])
    assert labels.tolist() == [loader.dataset.targets[p] for p in loader.positions[order].tolist()]


def test_grayscale_folder_gives_one_channel(folder_cfg, tmp_path):
    root = write_image_folder(tmp_path / "gray", mode="L")
    cfg = folder_cfg(root=root)
    assert cfg.data.in_chans == 1 and len(cfg.data.mean) == 1
    assert next(iter(build_data(data_settings(cfg), CPU, seed=0).train))[0].shape[1:] == (1, 16, 16)
    forced = folder_cfg("data.in_chans=3", root=root)  # grayscale images served as RGB: three equal channels
    images = next(iter(build_data(data_settings(forced), CPU, seed=0).val))[0]
    assert images.shape[1] == 3 and torch.equal(images[:, 0], images[:, 2])


def test_sixteen_bit_grayscale_is_scaled_to_eight_bits():
    pixels = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    assert np.asarray(to_mode(Image.fromarray(pixels), "L")).tolist() == [[0, 1, 128, 255]]


def test_null_mean_and_std_are_measured_on_the_training_images(folder_cfg, tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "square", counts={"train": 8}, size=(16, 16))  # no val/: a split
    cfg = folder_cfg("data.val_split=6", root=root)
    data = build_data(data_settings(cfg), CPU, seed=0)
    kept = data.train
    assert (kept.num_examples, data.val.num_examples, data.val_is_test) == (18, 6, True)
    assert not set(kept.positions.tolist()) & set(data.val.positions.tolist())
    pixels = np.stack([np.asarray(Image.open(kept.dataset.samples[p][0])) for p in kept.positions.tolist()]) / 255
    assert cfg.data.mean == pytest.approx(pixels.mean((0, 1, 2)).tolist(), abs=1e-4)
    assert cfg.data.std == pytest.approx(pixels.std((0, 1, 2)).tolist(), abs=1e-4)
    assert folder_cfg("data.mean=[0.1,0.2,0.3]", root=root).data.mean == [0.1, 0.2, 0.3]
    unused = folder_cfg("data.normalize=false", root=root).data
    assert (unused.mean, unused.std) == ([0.0] * 3, [1.0] * 3)
    monkeypatch.setattr(folder, "STATS_IMAGES", 1)  # only the first of the evenly spaced images
    first = np.asarray(Image.open(kept.dataset.samples[int(kept.positions[0])][0])) / 255
    assert folder_cfg("data.val_split=6", root=root).data.mean == pytest.approx(first.mean((0, 1)).tolist(), abs=1e-4)


def break_folder(root, problem: str) -> None:
    if problem == "no_train":
        shutil.rmtree(root / "train")
    elif problem == "no_classes":
        for name in FOLDER_CLASSES:
            shutil.rmtree(root / "train" / name)
    elif problem == "val_classes":
        (root / "val" / "ship").rename(root / "val" / "boat")
    elif problem == "test_classes":
        write_image_folder(root, counts={"test": 1}, classes=("cat", "dog"))
    elif problem == "empty_class":
        for image in (root / "train" / "dog").iterdir():
            image.unlink()
    elif problem == "no_validation":
        shutil.rmtree(root / "val")


# (folder problem, overrides) -> error class and fragments of its one-line message
FOLDER_ERRORS = [
    ((None, ["data.root="]), ConfigError, ["data.root= is not allowed: expected a folder path"]),
    ((None, ["data.root=/no/such/folder"]), DataError, ["data.root=/no/such/folder is not a folder"]),
    (("no_train", []), DataError, ["has no train/ folder"]),
    (("no_classes", []), DataError, ["train has no class folders"]),
    (("val_classes", []), DataError, ["val lacks ship and has the extra boat", "must match"]),
    (("test_classes", []), DataError, ["test lacks ship"]),
    (("empty_class", []), DataError, ["train: Found no valid file for the classes dog"]),
    (("no_validation", ["data.val_split=0"]), ConfigError, ["data.val_split=0 is not allowed", "no val/ or test/"]),
    ((None, ["data.permute_pixels=true"]), ConfigError, ["data.permute_pixels=true is not allowed"]),
    ((None, ["data.num_classes=5"]), ConfigError, ["data.num_classes=5 is not allowed: expected null or 3"]),
    ((None, ["data.in_chans=2"]), ConfigError, ["data.in_chans=2 is not allowed", "1 (grayscale) or 3 (RGB)"]),
    ((None, ["data.num_workers=-1"]), ConfigError, ["data.num_workers=-1 is not allowed: expected auto or"]),
]


@pytest.mark.parametrize(("case", "error", "fragments"), FOLDER_ERRORS, ids=[str(c) for c, _, _ in FOLDER_ERRORS])
def test_a_bad_folder_or_value_is_one_line_naming_the_key_or_path(folder_cfg, image_folder_root, case, error,
                                                                   fragments):
    problem, overrides = case
    if problem:
        break_folder(image_folder_root, problem)
    with pytest.raises(error) as raised:
        folder_cfg(*overrides)
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_an_unreadable_image_met_by_a_worker_is_named(folder_cfg, image_folder_root):
    bad = image_folder_root / "train" / "dog" / "zzz.png"
    bad.write_bytes(b"not a png")
    data = build_data(data_settings(folder_cfg(*GIVEN_NORMALIZATION, "data.num_workers=1")), CPU, seed=0)
    with pytest.raises(DataError, match=rf"^{bad}: not a readable image \(UnidentifiedImageError: .*remove the file$"):
        epoch(data)


def test_folder_errors_on_the_command_line_are_one_line_without_traceback(cli_main, tmp_path):
    roots = {problem: write_image_folder(tmp_path / problem) for problem in ("val_classes", "bad_file")}
    break_folder(roots["val_classes"], "val_classes")
    (roots["bad_file"] / "train" / "cat" / "zzz.png").write_bytes(b"\x89PNG truncated")
    cases = [  # arguments, exit code, fragment
        ([], 2, "data.root is required"),
        ([f"data.root={roots['val_classes']}"], 2, "val lacks ship"),  # found by validation: refused
        ([f"data.root={roots['bad_file']}", *GIVEN_NORMALIZATION], 1, "zzz.png: not a readable image"),
    ]
    for i, (args, code, fragment) in enumerate(cases):
        result = cli_main(*FOLDER_RUN, *args, f"hydra.run.dir={tmp_path / f'run{i}'}")
        assert one_line_error(result, fragment).startswith("error: ")
        assert result.returncode == code, result.stderr
