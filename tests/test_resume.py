"""Interrupt and resume exactly, stop cleanly on divergence, never lose what a run already wrote."""

from __future__ import annotations

import csv
import json
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import torch
import torch.nn as nn
from tensorboard.plugins.hparams import api_pb2

import cnnbench.engine.loop as loop
import cnnbench.train as train_module
from cnnbench.engine.checkpoint import load_checkpoint
from cnnbench.errors import Diverged, Interrupted
from cnnbench.runtime.signals import StopFlag
from cnnbench.train import run
from tests.conftest import REPO, RESUMABLE, TINY_RUN, hparams_of, one_line_error, process_env, tb_experiment

EXACT_COLUMNS = ("epoch", "lr", "train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best")


def exact_rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [{k: row[k] for k in EXACT_COLUMNS} for row in csv.DictReader(f)]


def outcome(summary):
    keys = ("epochs_run", "best_epoch", "val/acc_best", "test/acc", "test/loss", "test/per_class_acc", "status")
    return {k: summary[k] for k in keys}


@contextmanager
def stop_after(step_count: int, monkeypatch):
    """Ask the training loop to stop after `step_count` optimizer steps, as SIGINT would."""
    flag = StopFlag()
    calls = {"n": 0}
    real_step = loop.training_step

    def counting_step(*args, **kwargs):
        result = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == step_count:
            flag.signal_name = "SIGINT"
        return result

    @contextmanager
    def fake_signals(*args, **kwargs):
        yield flag

    real_signals = train_module.stop_on_signals
    monkeypatch.setattr(loop, "training_step", counting_step)
    monkeypatch.setattr(train_module, "stop_on_signals", fake_signals)
    yield
    monkeypatch.setattr(loop, "training_step", real_step)
    monkeypatch.setattr(train_module, "stop_on_signals", real_signals)


@pytest.mark.parametrize("stop_at_step", [1, 19, 25, 57])  # first step, end of epoch 1, mid epoch 2, last step
def test_interrupted_then_resumed_run_matches_an_uninterrupted_one(make_cfg, tmp_path, monkeypatch, uninterrupted,
                                                                   stop_at_step):
    reference_dir, reference = uninterrupted
    run_dir = tmp_path / "run"
    with stop_after(stop_at_step, monkeypatch), pytest.raises(Interrupted) as stopped:
        run(make_cfg(RESUMABLE, output_dir=run_dir))
    assert stopped.value.exit_code == 130
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"

    resumed = run(make_cfg([*RESUMABLE, f"trainer.resume={run_dir}"], output_dir=tmp_path / "fresh"))
    assert not (tmp_path / "fresh").exists()  # the resumed run stays in its own directory
    assert outcome(resumed) == outcome(reference)
    assert exact_rows(run_dir) == exact_rows(reference_dir)  # value by value, no duplicate rows
    from tests.conftest import tb_scalars as scalars

    steps = [step for step, _ in scalars(run_dir)["val/acc"]]
    assert steps == [1, 2, 3]  # TensorBoard continues the same curve without duplicate steps


def test_sigint_to_a_real_training_process_then_resume(cli_main, tmp_path, uninterrupted):
    reference_dir, reference = uninterrupted
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "cnnbench", *RESUMABLE, "trainer.epochs=3", f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(args, cwd=REPO, env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if (run_dir / "metrics.csv").exists() and len((run_dir / "metrics.csv").read_text().splitlines()) >= 2:
            process.send_signal(signal.SIGINT)  # after the first epoch
            break
        time.sleep(0.01)
    _, err = process.communicate(timeout=120)
    summary = json.loads((run_dir / "summary.json").read_text())
    if process.returncode == 0:
        pytest.skip("the run finished before the signal arrived")  # a very fast machine
    assert process.returncode == 130 and summary["status"] == "interrupted"
    assert "Traceback" not in err
    stopped, last = err.strip().splitlines()[-2:]  # the line the shell shows last is a command to paste
    assert stopped.startswith("stopped: SIGINT: stopped in epoch ")
    assert shlex.split(last) == ["continue:", "python", "-m", "cnnbench", f"trainer.resume={run_dir}"]

    result = cli_main(*RESUMABLE, f"trainer.resume={run_dir}", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert outcome(json.loads((run_dir / "summary.json").read_text())) == outcome(reference)
    assert exact_rows(run_dir) == exact_rows(reference_dir)


class NaNAfter(nn.CrossEntropyLoss):
    """Cross-entropy that turns NaN from the 12th training call on (evaluation calls are not counted)."""

    calls = 0

    def forward(self, logits, labels):
        loss = super().forward(logits, labels)
        if torch.is_grad_enabled():
            NaNAfter.calls += 1
            if NaNAfter.calls >= 12:
                return loss * float("nan")
        return loss


def test_nan_loss_stops_the_run_as_diverged_and_keeps_the_last_good_state(make_cfg, tmp_path, monkeypatch):
    NaNAfter.calls = 0
    monkeypatch.setattr(nn, "CrossEntropyLoss", NaNAfter)
    run_dir = tmp_path / "run"
    with pytest.raises(Diverged) as diverged:  # 6 steps per epoch: the 12th is epoch 2, step 6
        run(make_cfg([*TINY_RUN, "trainer.epochs=5", "trainer.progress_every=1"], output_dir=run_dir))
    assert "epoch 2, step 6" in str(diverged.value) and "optimizer.lr" in str(diverged.value)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert last["epoch"] == 1 and best["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())


def test_divergence_on_the_command_line_is_one_line(cli_main, tmp_path):
    result = cli_main(*TINY_RUN, "optimizer.lr=1e30", "trainer.progress_every=1", f"hydra.run.dir={tmp_path / 'r'}")
    one_line_error(result, "diverged at epoch 1")
    assert result.returncode == 1


def interrupted_run(make_cfg, monkeypatch, run_dir, overrides=RESUMABLE, after_step: int = 25):
    """A run of `overrides` in `run_dir`, stopped as SIGINT stops it after `after_step` steps."""
    with stop_after(after_step, monkeypatch), pytest.raises(Interrupted):
        run(make_cfg(overrides, output_dir=run_dir))
    return run_dir


def file_hashes(folder) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "run.lock"}


def test_truncated_last_pt_is_refused_and_left_as_it_is(cli_main, make_cfg, tmp_path, monkeypatch):
    run_dir = interrupted_run(make_cfg, monkeypatch, tmp_path / "run")
    last = run_dir / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    before = file_hashes(run_dir)
    result = cli_main(*RESUMABLE, f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'other'}")
    one_line_error(result, str(last), "truncated")
    assert file_hashes(run_dir) == before


def test_resuming_with_another_model_is_refused_naming_the_saved_value(cli_main, make_cfg, tmp_path, monkeypatch):
    run_dir = interrupted_run(make_cfg, monkeypatch, tmp_path / "run")
    before = file_hashes(run_dir)
    result = cli_main(*RESUMABLE, "model=lenet", f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'other'}")
    one_line_error(result, "model.name=lenet (saved: lenet5)", "leave these out to continue it")
    assert result.returncode == 2 and file_hashes(run_dir) == before


def test_a_loose_pt_file_is_refused(cli_main, tmp_path):
    foreign = tmp_path / "downloads" / "weights.pt"
    foreign.parent.mkdir()
    torch.save({"something": torch.zeros(3)}, foreign)
    result = cli_main(*TINY_RUN, f"trainer.resume={foreign}", f"hydra.run.dir={tmp_path / 'run'}")
    one_line_error(result, f"trainer.resume={foreign} is not allowed", "checkpoints/last.pt")
    assert sorted(p.name for p in foreign.parent.iterdir()) == ["weights.pt"]  # nothing beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads", "run"]  # the failure is recorded in run/


def test_sweep_with_a_failing_job_finishes_the_others_then_a_rerun_continues_only_the_unfinished(cli_main, tmp_path):
    sweep = tmp_path / "sweep"
    sweep_args = ["-m", *TINY_RUN, "trainer.epochs=1", "optimizer.lr=0.01,1e30,0.05", "trainer.progress_every=1",
                  f"hydra.sweep.dir={sweep}"]
    result = cli_main(*sweep_args)
    assert result.returncode == 1  # a job did not complete: the sweep says so
    statuses = {p.parent.name: json.loads(p.read_text())["status"] for p in sweep.glob("*/summary.json")}
    first, diverged, last = "0_lr-0.01", "1_lr-1e+30", "2_lr-0.05"
    assert statuses == {first: "completed", diverged: "diverged", last: "completed"}
    assert "3 jobs, 2 completed, 1 diverged" in result.stdout
    assert f"sweep job 2 of 3 (#1) ({sweep / diverged}) diverged: training diverged" in result.stderr  # at once
    assert "Traceback" not in result.stdout + result.stderr
    entries = {name: hparams_of(sweep / name) for name in statuses}  # every job in HParams, the diverged one too
    assert entries[diverged].status == api_pb2.STATUS_FAILURE and entries[first].status == api_pb2.STATUS_SUCCESS
    assert entries[diverged].values["optimizer.lr"] == 1e30 and tb_experiment(sweep).differing == ["optimizer.lr"]

    job2 = json.loads((sweep / last / "summary.json").read_text())
    job2["status"] = "interrupted"  # as if job 2 had been stopped: the rerun must pick it up, not start over
    (sweep / last / "summary.json").write_text(json.dumps(job2))
    book = json.loads((sweep / "sweep.json").read_text())
    book["jobs"][2]["state"] = "interrupted"
    (sweep / "sweep.json").write_text(json.dumps(book))
    finished_ckpt = (sweep / first / "checkpoints" / "last.pt").stat().st_mtime_ns
    again = cli_main(*sweep_args)  # the same sweep command
    assert again.returncode == 1  # job 1 diverged, and is left so
    assert "sweep job 1 of 3 (#0) already completed" in again.stdout and "resuming at epoch" in again.stdout
    assert "3 jobs, 2 completed, 1 diverged (this launch ran 1: 1 completed)" in again.stdout
    assert (sweep / first / "checkpoints" / "last.pt").stat().st_mtime_ns == finished_ckpt  # not trained again
    assert json.loads((sweep / last / "summary.json").read_text())["status"] == "completed"
