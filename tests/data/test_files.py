"""Dataset files found where they are (data/files.py): gzipped or not, under data.root, in data.root itself or
in a system package's folder; checked by content; and, where the system has it, the real Fashion-MNIST."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnbench.config import data_settings
from cnnbench.data import files
from cnnbench.data.sources import load_source
from cnnbench.errors import DataError
from tests.conftest import random_images, write_idx

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def idx_files(folder: Path, gz: bool, count: int = 120) -> Path:
    for prefix, n, seed in (("train", count, 0), ("t10k", count // 3, 1)):
        images, labels = random_images(n, (28, 28), seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, gz=gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, gz=gz)
    return folder


def load(make_cfg, root, name="fashion_mnist"):
    return load_source(data_settings(make_cfg([f"data={name}", f"data.root={root}", "data.download=false"])))


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("where", ["FashionMNIST/raw", "."])
def test_the_files_are_read_under_data_root_or_in_it_gzipped_or_not(make_cfg, tmp_path, gz, where):
    idx_files(tmp_path / "root" / where, gz=gz)
    before = sorted(p.name for p in (tmp_path / "root").rglob("*"))
    source = load(make_cfg, tmp_path / "root")
    assert source.train.images.shape == (120, 1, 28, 28) and len(source.test) == 40
    folder = tmp_path / "root" / where if where != "." else tmp_path / "root"
    assert source.origin == f"{folder}{' (gzip)' if gz else ''}"
    assert sorted(p.name for p in (tmp_path / "root").rglob("*")) == before  # nothing unpacked beside them


def test_the_system_folder_is_used_when_data_root_has_nothing(make_cfg, tmp_path, monkeypatch):
    system = idx_files(tmp_path / "usr_share", gz=True)
    monkeypatch.setattr(files, "SYSTEM_FOLDERS", {**files.SYSTEM_FOLDERS, "fashion_mnist": (str(system),)})
    before = sorted(p.name for p in system.iterdir())
    source = load(make_cfg, tmp_path / "empty")
    assert source.origin == f"{system} (gzip)" and len(source.train) == 120
    assert sorted(p.name for p in system.iterdir()) == before  # nothing written into a system folder


def test_data_root_comes_before_the_system_folder(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "SYSTEM_FOLDERS", {**files.SYSTEM_FOLDERS,
                                                  "fashion_mnist": (str(idx_files(tmp_path / "sys", gz=True)),)})
    idx_files(tmp_path / "root" / "FashionMNIST" / "raw", gz=False, count=60)
    assert len(load(make_cfg, tmp_path / "root").train) == 60


def test_nothing_anywhere_lists_where_it_looked_and_the_ways_out(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "SYSTEM_FOLDERS", {**files.SYSTEM_FOLDERS, "fashion_mnist": ("/no/such/folder",)})
    partial = tmp_path / "root" / "FashionMNIST" / "raw"
    idx_files(partial, gz=True)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load(make_cfg, tmp_path / "root")
    message = str(err.value)
    assert "\n" not in message and message.startswith("fashion_mnist not found; looked in ")
    assert f"{partial} (only train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz)" \
        in message
    assert f"{tmp_path / 'root'} (nothing)" in message and "/no/such/folder (nothing)" in message
    assert "apt-get install dataset-fashion-mnist" in message and "data.download=true" in message
    with pytest.raises(DataError, match="mnist not found") as mnist:  # no package for MNIST: two ways out
        load(make_cfg, tmp_path / "root", name="mnist")
    assert "apt-get" not in str(mnist.value)


def test_a_damaged_gzip_file_is_named(make_cfg, tmp_path):
    raw = idx_files(tmp_path / "root" / "FashionMNIST" / "raw", gz=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"not really gzip")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: not a readable gzip file"):
        load(make_cfg, tmp_path / "root")


def test_a_file_with_the_originals_size_must_have_its_content(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "ORIGINAL_COUNTS", {"train": 120, "t10k": 40})  # these tiny files play the originals
    found, _ = files.find("fashion_mnist", idx_files(tmp_path / "root", gz=True))
    with pytest.raises(files.Damaged, match="has the size of the original fashion_mnist file but not its content"):
        files.read_idx("fashion_mnist", found)


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.skipif(not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
                    reason="the real Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_the_real_fashion_mnist_from_debians_package_trains(cli_main, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a folder with nothing in it: data.root=data holds no files
    result = cli_main("model=lenet5", "data=fashion_mnist", "data.download=false", "trainer.epochs=1",
                      "trainer.max_steps_per_epoch=100", "optimizer=adam", "optimizer.lr=0.002", "trainer.device=cpu",
                      "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr
    assert f"data from {DEBIAN} (gzip)" in result.stdout
    import json

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["num_train"], summary["num_val"], summary["num_test"]) == (54_000, 6_000, 10_000)
    assert summary["test/acc"] > 0.7  # 100 steps of LeNet-5 on the real images (chance: 0.1)
    source = load_source(type("D", (), {"name": "fashion_mnist", "root": "nowhere", "download": False})())
    assert source.train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert torch.bincount(source.train.labels).tolist() == [6000] * 10
    pixels = source.train.images.float() / 255
    assert pixels.mean().item() == pytest.approx(0.2860, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3530, abs=1e-4)
    assert not (tmp_path / "data").exists()  # nothing was downloaded or unpacked
