"""Bad input on the command line: non-zero exit, one or two lines naming the key, no traceback."""

from __future__ import annotations

import sys

import pytest
from torchvision.datasets import MNIST

from tests.conftest import TINY_RUN, run_cli


def assert_one_line_error(result, *fragments: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    return result.stderr


@pytest.mark.parametrize(("args", "fragments"), [
    (["model=foo"], ["model=foo", "lenet5"]),
    (["data=imagenet"], ["data=imagenet", "fashion_mnist"]),
    (["trainer.foo=1"], ["trainer.foo", "epochs"]),
    (["trainer.epoch=3"], ["trainer.epoch", "did you mean trainer.epochs"]),
    (["-m", "model=lenet,lenet55"], ["model=lenet55", "did you mean model=lenet5"]),
    (["trainer.epochs=="], ["trainer.epochs=="]),
])
def test_unknown_options_and_keys_fail_before_hydra_starts(tmp_path, args, fragments):
    result = run_cli(*args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert_one_line_error(result, *fragments)
    assert result.returncode == 2
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(("override", "fragments"), [
    ("optimizer.lr=0", ["optimizer.lr=0", "> 0"]),
    ("optimizer.lr=-0.1", ["optimizer.lr=-0.1", "> 0"]),
    ("data.batch_size=0", ["data.batch_size=0", ">= 1"]),
    ("trainer.epochs=0", ["trainer.epochs=0", ">= 1"]),
    ("trainer.device=cuda", ["trainer.device=cuda"]),
    ("trainer.patience=-1", ["trainer.patience=-1"]),
])
def test_out_of_range_values_name_the_key_and_log_the_traceback(tmp_path, override, fragments):
    if override == "trainer.device=cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    run_dir = tmp_path / "run"
    result = run_cli(*TINY_RUN, override, f"hydra.run.dir={run_dir}")
    assert_one_line_error(result, *fragments)
    log = (run_dir / "run.log").read_text()
    assert "Traceback" in log and "ConfigError" in log  # the cause is kept, in the run's log


def test_missing_dataset_says_where_to_put_which_files(tmp_path):
    root = tmp_path / "nothing"
    result = run_cli("data=mnist", f"data.root={root}", "data.download=false", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_line_error(result, str(root / "MNIST" / "raw"), "train-images-idx3-ubyte", "data.download=true")


def test_failed_download_is_one_line(tmp_path, monkeypatch, capsys):
    # In-process, so the download mirror can point at a closed loopback port: the real download code fails.
    from cnnbench.cli import main

    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(sys, "argv", ["cnnbench", "data=mnist", f"data.root={tmp_path / 'dl'}",
                                      f"hydra.run.dir={tmp_path / 'run'}"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "downloading mnist" in err and "data.download=false" in err
    assert "Traceback" not in err


def test_cfg_job_prints_the_composed_config_without_running(tmp_path):
    result = run_cli("--cfg", "job", "model=resnet18", "data=cifar10", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0
    assert "name: resnet18" in result.stdout and "in_chans: 3" in result.stdout
    assert not (tmp_path / "run").exists()
