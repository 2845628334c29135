"""The front door: bad input is one line naming the key, a non-zero exit code and no traceback; the traceback
goes to the run's run.log. In-process through `cnnbench.cli.main`, plus the few things only a real process shows."""

from __future__ import annotations

import pytest
import torch
from torchvision.datasets import MNIST

from tests.conftest import TINY_RUN, one_line_error


@pytest.mark.parametrize(("args", "fragments"), [
    (["model=foo"], ["model=foo", "lenet5"]),
    (["data=imagenet"], ["data=imagenet", "fashion_mnist"]),
    (["trainer.foo=1"], ["trainer.foo", "epochs"]),
    (["trainer.epoch=3"], ["trainer.epoch", "did you mean trainer.epochs"]),
    (["-m", "model=lenet,lenet55"], ["model=lenet55", "did you mean model=lenet5"]),
    (["trainer.epochs=="], ["trainer.epochs==", "override_grammar"]),
    (["-m", "hydra/launcher=jobib"], ["hydra/launcher=jobib is not an option", "did you mean hydra/launcher=joblib"]),
    (["-m", "seed=0,1", "--cfg", "job"], ["--multirun and --cfg cannot be combined"]),
])
def test_unknown_options_and_keys_fail_before_hydra_starts(cli_main, tmp_path, args, fragments):
    result = cli_main(*args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    one_line_error(result, *fragments)
    assert result.returncode == 2
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(("override", "fragments"), [
    ("optimizer.lr=0", ["optimizer.lr=0", "> 0"]),
    ("optimizer.lr=-0.1", ["optimizer.lr=-0.1", "> 0"]),
    ("data.batch_size=0", ["data.batch_size=0", ">= 1"]),
    ("trainer.epochs=0", ["trainer.epochs=0", ">= 1"]),
    ("trainer.patience=-1", ["trainer.patience=-1"]),
    ("trainer.devices=0", ["trainer.devices=0 is not allowed: expected an integer >= 1"]),
    pytest.param("trainer.device=cuda", ["trainer.device=cuda"],
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_bad_values_name_the_key_and_leave_no_folder(cli_main, tmp_path, monkeypatch, override, fragments):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    result = cli_main(*TINY_RUN, override, f"hydra.run.dir={run_dir}")
    one_line_error(result, *fragments)
    assert result.returncode == 2
    assert not run_dir.exists()  # refused before Hydra made the folder: nothing written
    result = cli_main(*TINY_RUN, override)  # the default, clock-named folder is not made either
    assert result.returncode == 2 and not (tmp_path / "outputs").exists()


def test_missing_dataset_says_where_to_put_which_files(cli_main, tmp_path):
    root = tmp_path / "nothing"
    result = cli_main("data=mnist", f"data.root={root}", "data.download=false", f"hydra.run.dir={tmp_path / 'run'}")
    one_line_error(result, str(root / "MNIST" / "raw"), "train-images-idx3-ubyte", "data.download=true")
    assert result.returncode == 1


def test_failed_download_is_one_line(cli_main, tmp_path, monkeypatch):
    # the download mirror points at a closed loopback port: torchvision's real download code fails
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    result = cli_main("data=mnist", f"data.root={tmp_path / 'dl'}", f"hydra.run.dir={tmp_path / 'run'}")
    one_line_error(result, "downloading mnist", "data.download=false")


def test_cfg_job_prints_the_composed_config_without_running(cli_main, tmp_path):
    result = cli_main("--cfg", "job", "model=resnet18", "data=cifar10", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0
    assert "name: resnet18" in result.stdout and "in_chans: 3" in result.stdout
    assert not (tmp_path / "run").exists()
