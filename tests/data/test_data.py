"""The data path: torchvision readers on generated files, splits, device loaders, batched transforms."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import random_split
from torchvision.datasets import MNIST

from cnnbench.config import data_settings
from cnnbench.data import build_data, split_train_val
from cnnbench.data.sources import ImageSet, load_source
from cnnbench.data.transforms import BatchTransform, random_crop, random_flip
from cnnbench.errors import DataError
from tests.conftest import one_line_error, random_images, write_idx

CPU = torch.device("cpu")


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_idx_files_are_read_into_one_tensor(make_cfg, mnist_root, dataset):
    cfg = make_cfg([f"data={dataset}", f"data.root={mnist_root}", "data.download=false", "data.val_split=50"])
    source = load_source(data_settings(cfg))
    assert source.train.images.shape == (300, 1, 28, 28) and source.train.images.dtype == torch.uint8
    assert source.test.images.shape == (100, 1, 28, 28)
    assert source.train.labels.dtype == torch.int64 and int(source.train.labels.max()) < 10

    data = build_data(data_settings(cfg), CPU, seed=0)
    assert (data.train.num_examples, data.val.num_examples, data.test.num_examples) == (250, 50, 100)
    assert data.train.images.dtype == torch.uint8 and data.train.images.device == CPU
    images, labels = next(iter(data.train))
    assert images.shape == (cfg.data.batch_size if cfg.data.batch_size < 250 else 250, 1, 28, 28)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64


def test_cifar_batches_are_read_into_one_tensor(make_cfg, cifar_root):
    cfg = make_cfg(["data=cifar10", f"data.root={cifar_root}", "data.download=false", "data.val_split=0.25"])
    data = build_data(data_settings(cfg), CPU, seed=0)
    assert data.train.images.shape == (150, 3, 32, 32)
    assert data.val.num_examples == 50 and data.test.num_examples == 50
    assert data.classes[0] == "airplane"
    images, _ = next(iter(data.val))
    assert images.shape[1:] == (3, 32, 32)


def test_missing_dataset_names_the_folder_and_files(make_cfg, tmp_path):
    cfg = make_cfg(["data=fashion_mnist", f"data.root={tmp_path / 'empty'}", "data.download=false"])
    with pytest.raises(DataError) as err:
        load_source(data_settings(cfg))
    message = str(err.value)
    assert str(tmp_path / "empty" / "FashionMNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "data.download=true" in message


def test_failed_download_says_what_to_do(make_cfg, tmp_path, monkeypatch):
    # A closed port on the loopback interface: the real download code runs and fails at once.
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    cfg = make_cfg(["data=mnist", f"data.root={tmp_path / 'dl'}", "data.download=true"])
    with pytest.raises(DataError) as err:
        load_source(data_settings(cfg))
    assert "downloading mnist" in str(err.value) and "data.download=false" in str(err.value)


def test_split_matches_torch_random_split():
    dataset = ImageSet(torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1), torch.arange(100))
    train, val = split_train_val(dataset, 10, split_seed=42)
    ref_train, ref_val = random_split(range(100), [90, 10], generator=torch.Generator().manual_seed(42))
    assert train.labels.tolist() == list(ref_train.indices)
    assert val.labels.tolist() == list(ref_val.indices)
    assert len(split_train_val(dataset, 0.2, 42)[1]) == 20


def test_val_split_zero_validates_on_the_test_set(make_cfg):
    cfg = make_cfg(["data=synthetic", "data.val_split=0"])
    data = build_data(data_settings(cfg), CPU, seed=0)
    assert data.val is data.test and data.val_is_test
    assert data.train.num_examples == cfg.data.num_train


def test_same_seed_gives_same_batches(make_cfg):
    cfg = make_cfg(["data=synthetic", "data.augment=true"])
    first = [b for b, _ in build_data(data_settings(cfg), CPU, seed=7).train]
    second = [b for b, _ in build_data(data_settings(cfg), CPU, seed=7).train]
    other = [b for b, _ in build_data(data_settings(cfg), CPU, seed=8).train]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], other[0])


def test_shuffled_epoch_visits_every_image_once(make_cfg):
    cfg = make_cfg(["data=synthetic", "data.batch_size=64", "data.normalize=false"])
    data = build_data(data_settings(cfg), CPU, seed=0)
    batches = list(data.train)
    assert len(batches) == len(data.train) == -(-data.train.num_examples // 64)
    seen = torch.cat([b for b, _ in batches]).flatten(1)
    stored = (data.train.images.float() / 255).flatten(1)
    # the same images, each exactly once, in a different order
    def as_sorted_rows(t: torch.Tensor) -> list[tuple[int, ...]]:
        return sorted(map(tuple, (t * 255).round().int().tolist()))

    assert as_sorted_rows(seen) == as_sorted_rows(stored)
    assert not torch.equal(seen, stored)


def test_flip_mirrors_about_half_the_images():
    x = torch.rand(400, 1, 5, 5)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert bool((flipped | kept).all())
    assert 150 < int(flipped.sum()) < 250


def test_crop_is_a_window_of_the_zero_padded_image():
    x = torch.rand(64, 2, 8, 8) + 1  # strictly positive, so padding shows up as exact zeros
    out = random_crop(x, torch.Generator().manual_seed(0), padding=4)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    offsets = set()
    for o, p in zip(out, padded, strict=True):
        windows = [(dy, dx) for dy in range(9) for dx in range(9) if torch.equal(o, p[:, dy:dy + 8, dx:dx + 8])]
        assert windows, "every crop must be a window of the padded image"
        offsets.add(windows[0])
    assert len(offsets) > 10  # offsets really vary per image


def test_crop_padding_sets_the_shift_and_zero_leaves_flips_only():
    images = torch.randint(1, 256, (256, 1, 8, 8), dtype=torch.uint8)  # no zero pixel: padding shows as zeros
    x = images.float() / 255
    for padding in (0, 2):
        transform = BatchTransform(mean=[0.0], std=[1.0], augment=True, crop_padding=padding)
        out = transform(images, torch.Generator().manual_seed(0))
        zero_rows = (out == 0).all(dim=-1).sum(dim=(1, 2))  # rows a vertical shift filled with padding
        if padding == 0:
            assert all(torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True))
        else:
            assert int(zero_rows.max()) == padding and int((zero_rows > 0).sum()) > 64


def test_normalization_uses_the_dataset_mean_and_std():
    images = torch.full((4, 3, 2, 2), 51, dtype=torch.uint8)  # 0.2 after scaling
    transform = BatchTransform(mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 0.1])
    out = transform(images)
    expected = torch.tensor([(0.2 - 0.1) / 0.5, 0.0, (0.2 - 0.3) / 0.1]).view(1, 3, 1, 1).expand_as(out)
    assert torch.allclose(out, expected, atol=1e-6)


def test_resize_happens_per_batch_on_the_device(make_cfg):
    cfg = make_cfg(["data=synthetic", "data.resize=56"])
    data = build_data(data_settings(cfg), CPU, seed=0)
    assert data.train.images.shape[-1] == 28  # stored at native size
    images, _ = next(iter(data.train))
    assert images.shape[-2:] == (56, 56) and data.input_shape == (1, 56, 56)


def test_permute_pixels_applies_one_fixed_permutation_to_train_and_test(make_cfg):
    from cnnbench.data import pixel_permutation

    plain = build_data(data_settings(make_cfg(["data=synthetic", "data.val_split=0"])), CPU, seed=0)
    shuffled = build_data(data_settings(make_cfg(["data=synthetic", "data.val_split=0", "data.permute_pixels=true"])),
                          CPU, seed=0)
    permutation = pixel_permutation(28, 28, seed=42)
    assert sorted(permutation.tolist()) == list(range(784)) and not torch.equal(permutation, torch.arange(784))
    for before, after in ((plain.train.images, shuffled.train.images), (plain.test.images, shuffled.test.images)):
        assert torch.equal(after.flatten(2), before.flatten(2)[:, :, permutation])
    again = build_data(data_settings(make_cfg(["data=synthetic", "data.permute_pixels=true"])), CPU, seed=5)
    assert torch.equal(again.test.images, shuffled.test.images)  # the same permutation whatever the run seed


# --- damaged files: one line naming the file and what is wrong --------------------------------------------

def load_mnist(make_cfg, root, download: bool = False):
    return load_source(data_settings(make_cfg(["data=mnist", f"data.root={root}", f"data.download={download}"])))


def damaged_file_message(make_cfg, root, download: bool = False) -> str:
    with pytest.raises(DataError) as err:
        load_mnist(make_cfg, root, download)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_truncated_idx_file_names_the_file_and_both_sizes(make_cfg, mnist_root):
    images = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    message = damaged_file_message(make_cfg, mnist_root)
    assert message.startswith(f"{images}: wrong size (1,000 bytes; the header promises 235,216)")  # 16 + 300*28*28
    assert "data.download=true" in message


def test_bad_magic_number_names_the_file_and_the_expected_magic(make_cfg, mnist_root):
    labels = mnist_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x12\x34" + labels.read_bytes()[4:])
    message = damaged_file_message(make_cfg, mnist_root)
    assert message.startswith(f"{labels}: bad header (magic 0x00001234, expected 0x00000801 for an IDX label file)")


def test_images_of_the_wrong_size_are_refused(make_cfg, mnist_root):
    images = mnist_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    write_idx(images, random_images(100, (32, 32), seed=3)[0])
    message = damaged_file_message(make_cfg, mnist_root)
    assert message.startswith(f"{images}: bad header (images of 32x32, expected 28x28)")


def test_label_count_must_match_the_image_count(make_cfg, mnist_root):
    labels = mnist_root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    write_idx(labels, random_images(299, (28, 28), seed=0)[1])
    message = damaged_file_message(make_cfg, mnist_root)
    assert message.startswith(f"{labels}: 299 labels for the 300 images of train-images-idx3-ubyte")


def test_damaged_file_is_reported_even_with_download_true(make_cfg, mnist_root, monkeypatch):
    # every file is present, so torchvision would not download anything and would read the damaged file
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    images = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    damaged = images.read_bytes()[:-1]
    images.write_bytes(damaged)
    message = damaged_file_message(make_cfg, mnist_root, download=True)
    assert message.startswith(f"{images}: wrong size (235,215 bytes; the header promises 235,216)")
    assert images.read_bytes() == damaged  # nothing overwritten


def test_damaged_file_beside_a_missing_one_is_named_when_the_download_fails(make_cfg, mnist_root, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    raw = mnist_root / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:500])
    message = damaged_file_message(make_cfg, mnist_root, download=True)
    assert message.startswith(f"{images}: wrong size (500 bytes") and "downloading a fresh copy failed" in message


def test_sound_files_pass_the_checks(make_cfg, mnist_root):
    from cnnbench.data.files import first_damaged_idx

    assert first_damaged_idx(mnist_root / "MNIST" / "raw") is None
    assert len(load_mnist(make_cfg, mnist_root).train) == 300


def cifar_message(make_cfg, root) -> str:
    cfg = make_cfg(["data=cifar10", f"data.root={root}", "data.download=false"])
    with pytest.raises(DataError) as err:
        load_source(data_settings(cfg))
    message = str(err.value)
    assert "\n" not in message
    return message


def test_truncated_cifar_batch_fails_its_checksum_by_name(make_cfg, cifar_root):
    batch = cifar_root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:2000])
    message = cifar_message(make_cfg, cifar_root)
    assert message.startswith(f"{batch}: fails its MD5 checksum") and "data.download=true" in message


def test_cifar_batch_that_cannot_be_unpickled_is_named(make_cfg, cifar_root, monkeypatch):
    import hashlib

    from torchvision.datasets import CIFAR10

    batch = cifar_root / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:2000])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", hashlib.md5(batch.read_bytes()).hexdigest()]])
    message = cifar_message(make_cfg, cifar_root)
    assert message.startswith(f"{batch}: cannot be unpickled")


def test_damaged_file_on_the_command_line_is_one_line_and_exit_code_1(cli_main, mnist_root, tmp_path):
    images = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    damaged = images.read_bytes()[:1000]
    images.write_bytes(damaged)
    run_dir = tmp_path / "run"
    result = cli_main("data=mnist", f"data.root={mnist_root}", "data.download=false", "trainer.device=cpu",
                      f"hydra.run.dir={run_dir}")
    one_line_error(result, f"{images}: wrong size (1,000 bytes")
    assert result.returncode == 1
    assert images.read_bytes() == damaged and not (run_dir / "checkpoints").exists()
