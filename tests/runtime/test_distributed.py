"""Data-parallel training on torch.distributed (gloo on the CPU): rank shards, one run directory, an agreed stop
and an exact resume. One 2-process run under torchrun is the reference of the other tests."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from cnnbench import CONF_DIR
from cnnbench.errors import Interrupted
from cnnbench.runtime.distributed import Ranks, batch_indices, steps_per_pass
from cnnbench.train import run
from tests.conftest import REPO, TINY_RUN, one_line_error, process_env
from tests.test_resume import stop_after

# The digits: 1,293 training images (21 steps of 64, a last batch of 13), which LeNet-5 learns within 3 epochs
# even augmented; augmentation makes every rank's own random stream part of what must resume; deterministic
# kernels; stop and divergence checks every 2 steps.
DDP_RUN = ["model=lenet5", "data=digits", "data.batch_size=64", "trainer.device=cpu", "trainer.epochs=3",
           "optimizer=adam", "optimizer.lr=0.003", "trainer.patience=0", "trainer.deterministic=true",
           "data.augment=true", "trainer.progress_every=2"]


def summary_of(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def history_of(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["history"]


def metric_rows(run_dir) -> list[str]:
    """metrics.csv without its timing columns."""
    return [",".join(line.split(",")[:7]) for line in (run_dir / "metrics.csv").read_text().splitlines()]


def config(*overrides: str, run_dir):
    with initialize_config_dir(CONF_DIR, version_base=None):
        cfg = compose("config", overrides=list(overrides))
    with open_dict(cfg):
        cfg.output_dir = str(run_dir)
    return cfg


@pytest.fixture(scope="module")
def torchrun_outputs(tmp_path_factory):
    """outputs/run of `torchrun --nproc_per_node=2 -m cnnbench ...`, as a user starts it."""
    outputs = tmp_path_factory.mktemp("torchrun") / "outputs"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cnnbench",
         *DDP_RUN, f"hydra.run.dir={outputs / 'run'}"],
        cwd=REPO, env=process_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("per-class test accuracy") == 1  # rank 0 speaks for both
    return outputs


def test_batch_parts_of_the_ranks_make_up_the_batches_of_one_process():
    order = torch.randperm(23, generator=torch.Generator().manual_seed(0))
    single = list(batch_indices(order, 23, 8, Ranks()))
    parts = [list(batch_indices(order, 23, 8, Ranks(rank, 3, rank))) for rank in range(3)]
    for step, batch in enumerate(single):
        joined = torch.cat([parts[rank][step] for rank in range(3)])
        assert sorted(joined.tolist()) == sorted(batch.tolist())
        assert not set(parts[0][step].tolist()) & set(parts[1][step].tolist())
    # evaluation (no order): ranks split 0..count-1 between them, every position once
    eval_parts = [torch.cat(list(batch_indices(None, 10, 4, Ranks(rank, 2, rank)))) for rank in range(2)]
    assert sorted(torch.cat(eval_parts).tolist()) == list(range(10))


def test_a_last_batch_smaller_than_the_world_size_is_left_out_of_training_only():
    # 17 images in batches of 8: the last batch holds 1 image, which 2 ranks cannot share
    assert steps_per_pass(17, 8, Ranks(0, 2, 0), training=True) == 2
    assert steps_per_pass(17, 8, Ranks(0, 2, 0), training=False) == 3
    assert steps_per_pass(17, 8, Ranks(), training=True) == 3
    assert steps_per_pass(18, 8, Ranks(0, 2, 0), training=True) == 3


def test_torchrun_ranks_write_one_run_dir_and_together_train_on_every_image(torchrun_outputs):
    run_dir = torchrun_outputs / "run"
    assert [p.name for p in torchrun_outputs.iterdir()] == ["run"]  # the other rank wrote nothing
    summary = summary_of(run_dir)
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert history_of(run_dir)["train_examples"] == [summary["num_train"]] * 3 == [1293] * 3  # one process's images
    assert summary["test/acc"] > 0.4  # it learned (one process reaches 0.66 in these 3 epochs)
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 1 + 3


def test_a_stop_on_rank_0_stops_every_rank_at_the_same_step_and_the_run_resumes_exactly(tmp_path, monkeypatch,
                                                                                       torchrun_outputs):
    # rank 0 runs here and is asked to stop after its 24th step (epoch 2, step 3), as SIGINT asks; rank 1,
    # spawned by trainer.devices=2, is not asked: both stop at the next check, after step 4
    run_dir = tmp_path / "run"
    with stop_after(24, monkeypatch), pytest.raises(Interrupted) as stopped:
        run(config(*DDP_RUN, "trainer.devices=2", run_dir=run_dir))
    assert stopped.value.exit_code == 130 and "epoch 2 after step 4" in str(stopped.value)
    assert summary_of(run_dir)["status"] == "interrupted"
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["world_size"] == 2

    resumed = run(config(*DDP_RUN, "trainer.devices=2", f"trainer.resume={run_dir}", run_dir=run_dir))
    reference = summary_of(torchrun_outputs / "run")
    assert resumed["status"] == "completed" and resumed["world_size"] == 2 and resumed["epochs_run"] == 3
    assert metric_rows(run_dir) == metric_rows(torchrun_outputs / "run")
    assert resumed["test/acc"] == reference["test/acc"]


def test_sync_bn_on_the_cpu_is_a_one_line_error(cli_main, tmp_path):
    result = cli_main(*TINY_RUN, "trainer.devices=2", "trainer.sync_bn=true", f"hydra.run.dir={tmp_path / 'run'}")
    one_line_error(result, "trainer.sync_bn=true is not allowed on the CPU")
