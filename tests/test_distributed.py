"""Data-parallel training on torch.distributed (gloo on the CPU): rank shards, one run directory, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from cnnbench.distributed import Ranks, batch_indices, steps_per_pass

from .conftest import REPO, TINY_RUN, run_cli

# 1,081 training images (a last batch of 57), a model that learns within 3 epochs, no augmentation: two
# processes then compute the same steps as one, up to how a split batch's mean gradient is rounded.
DDP_RUN = [*TINY_RUN, "data.num_train=1201", "data.num_test=301", "trainer.epochs=3", "optimizer=adam",
           "optimizer.lr=0.003", "trainer.patience=0"]


def summary_of(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def history_of(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["history"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("one") / "run"
    result = run_cli(*DDP_RUN, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    return run_dir


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


def test_two_processes_write_one_run_dir_and_train_like_one_process(tmp_path, one_process):
    outputs = tmp_path / "outputs"
    run_dir = outputs / "run"
    result = run_cli(*DDP_RUN, "trainer.devices=2", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in outputs.iterdir()] == ["run"]
    summary, reference = summary_of(run_dir), summary_of(one_process)
    assert summary["status"] == "completed" and summary["world_size"] == 2 and reference["world_size"] == 1
    assert history_of(run_dir)["train_examples"] == history_of(one_process)["train_examples"] == [1081] * 3
    assert abs(summary["test_acc"] - reference["test_acc"]) <= 0.03
    assert reference["test_acc"] > 0.3  # the comparison is between runs that learned something
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 1 + 3
    assert result.stdout.count("per-class test accuracy") == 1  # rank 0 speaks for both
    assert "rank 1" not in result.stderr


def metric_rows(run_dir) -> list[str]:
    """metrics.csv without its timing columns."""
    return [",".join(line.split(",")[:7]) for line in (run_dir / "metrics.csv").read_text().splitlines()]


def test_sigint_stops_every_rank_at_the_same_step_and_the_run_resumes_exactly(tmp_path):
    args = [*DDP_RUN, "trainer.devices=2", "trainer.epochs=3", "data.num_train=3001", "trainer.progress_every=2",
            "trainer.deterministic=true", "data.augment=true"]  # augmentation: every rank's random stream resumes
    reference = tmp_path / "uninterrupted"
    assert run_cli(*args, f"hydra.run.dir={reference}").returncode == 0
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "cnnbench", *args, f"hydra.run.dir={run_dir}"], cwd=REPO,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if (run_dir / "metrics.csv").exists():
            process.send_signal(signal.SIGINT)  # to rank 0 only: the ranks agree to stop
            break
        time.sleep(0.01)
    _, err = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert process.returncode == 130, err
    assert summary_of(run_dir)["status"] == "interrupted"
    assert "trainer.resume=" in err and "Traceback" not in err and "rank 1: error" not in err

    result = run_cli(*args, f"trainer.resume={run_dir}", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    summary = summary_of(run_dir)
    assert summary["status"] == "completed" and summary["world_size"] == 2 and summary["epochs_run"] == 3
    assert metric_rows(run_dir) == metric_rows(reference)
    assert summary["test_acc"] == summary_of(reference)["test_acc"]


def test_torchrun_ranks_share_rank_zeros_run_dir(tmp_path):
    run_dir = tmp_path / "outputs" / "run"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cnnbench",
         *TINY_RUN, "trainer.epochs=1", f"hydra.run.dir={run_dir}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["run"]
    assert summary_of(run_dir)["world_size"] == 2


@pytest.mark.parametrize(("overrides", "message"), [
    (["trainer.devices=0"], "trainer.devices=0 is not allowed: expected an integer >= 1"),
    (["trainer.devices=2", "trainer.sync_bn=true"], "trainer.sync_bn=true is not allowed on the CPU"),
])
def test_bad_data_parallel_settings_are_one_line_errors(tmp_path, overrides, message):
    result = run_cli(*TINY_RUN, *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
