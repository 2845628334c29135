"""End-to-end runs through run(cfg): files written, numbers consistent, early stopping, best checkpoint."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

import cnnbench.engine.loop as loop
from cnnbench.config import data_settings
from cnnbench.data.sources import load_source
from cnnbench.engine.checkpoint import load_checkpoint
from cnnbench.train import run
from tests.conftest import TINY_RUN, hparams_of, tb_events, tb_experiment, tb_scalars


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_two_epoch_run_writes_every_file_with_consistent_numbers(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    summary = run(make_cfg(TINY_RUN, output_dir=run_dir))

    for name in ("summary.json", "metrics.csv", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("events.out.tfevents.*"))  # in the run directory: TensorBoard names the run after it
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))

    required = {"model", "dataset", "params", "epochs_run", "best_epoch", "val/acc_best", "test/acc", "test/loss",
                "stopped_early", "throughput/train_examples_per_s", "time/wall_s", "device", "status"}
    assert required <= on_disk.keys()
    assert on_disk["model"] == "lenet5" and on_disk["dataset"] == "synthetic" and on_disk["status"] == "completed"
    assert on_disk["params"] == 61706 and on_disk["epochs_run"] == 2 and on_disk["device"] == "cpu"
    assert not on_disk["stopped_early"] and on_disk["throughput/train_examples_per_s"] > 0

    rows = read_csv(run_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    val_accs = [float(r["val/acc"]) for r in rows]
    assert on_disk["val/acc_best"] == pytest.approx(max(val_accs), abs=1e-5)
    assert on_disk["best_epoch"] == 1 + val_accs.index(max(val_accs))
    assert float(rows[-1]["val/acc_best"]) == pytest.approx(max(val_accs), abs=1e-5)
    # throughput in the summary is the second epoch's (the first is left out)
    assert on_disk["throughput/train_examples_per_s"] == pytest.approx(
        float(rows[1]["throughput/train_examples_per_s"]), rel=1e-3)

    tb = tb_scalars(run_dir)
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc", "lr", "throughput/train_examples_per_s"):
        assert [step for step, _ in tb[tag]] == [1, 2], tag
    assert [v for _, v in tb["val/acc"]] == pytest.approx(val_accs, abs=1e-5)
    assert tb["test/acc"][0][1] == pytest.approx(on_disk["test/acc"], abs=1e-6)


def test_per_class_accuracy_confusion_image_and_hparams(make_cfg, tmp_path, capsys):
    run_dir = tmp_path / "run"
    cfg = make_cfg(TINY_RUN, output_dir=run_dir)
    summary = run(cfg)
    per_class = summary["test/per_class_acc"]
    assert list(per_class) == [f"class_{i}" for i in range(10)]
    # the per-class accuracies, weighted by class size, give back the overall test accuracy
    class_sizes = torch.bincount(load_source(data_settings(cfg)).test.labels, minlength=10).tolist()
    weighted = sum(acc * n for acc, n in zip(per_class.values(), class_sizes, strict=True)) / sum(class_sizes)
    assert weighted == pytest.approx(summary["test/acc"], abs=1e-9)
    events = tb_events(run_dir, images=0)
    (image,) = events.Images("test/confusion_matrix")
    assert 200 <= image.width <= 560  # drawn for TensorBoard's card, about 230 pixels wide
    class_tags = [tag for tag in events.Tags()["scalars"] if tag.startswith("test/class_acc/")]
    assert sorted(class_tags) == [f"test/class_acc/class_{i}" for i in range(10)]
    assert events.Scalars("test/class_acc/class_3")[0].value == pytest.approx(per_class["class_3"])
    assert {"config", "overrides", "summary"} <= {tag.split("/")[0] for tag in events.Tags()["tensors"]}
    out = capsys.readouterr().out
    assert "per-class test accuracy" in out and "class_9" in out
    entry = hparams_of(run_dir)
    metrics = tb_experiment(run_dir).metrics  # the run's own scalars: no copies under other names
    assert {"test/acc", "val/acc_best", "val/acc", "val/loss", "train/loss"} <= set(metrics) <= set(tb_scalars(run_dir))
    assert entry.values["model"] == "lenet5" and entry.values["seed"] == 0
    tags = set(tb_scalars(run_dir))
    assert {"val/acc_best", "test/acc"} <= tags and not {"best_val_acc", "test_acc"} & tags  # no copies


def test_early_stopping_and_best_checkpoint_follow_val_acc(make_cfg, tmp_path, monkeypatch, capsys):
    """Validation accuracy is scripted (0.5, 0.9, 0.7, 0.6, ...): best epoch 2, patience 2 -> stop after 4."""
    scripted = iter([0.5, 0.9, 0.7, 0.6, 0.95, 0.99])
    tested_weights = {}
    real_evaluate = loop.evaluate

    real_test = loop.evaluate_with_confusion

    def fake_evaluate(model, loader, loss_fn, prefix="val", **kwargs):
        metrics = real_evaluate(model, loader, loss_fn, prefix, **kwargs)
        metrics["val/acc"] = next(scripted)
        return metrics

    def spying_test(model, *args, **kwargs):
        tested_weights.update({k: v.clone() for k, v in model.state_dict().items()})
        return real_test(model, *args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", fake_evaluate)
    monkeypatch.setattr(loop, "evaluate_with_confusion", spying_test)
    run_dir = tmp_path / "run"
    summary = run(make_cfg([*TINY_RUN, "trainer.epochs=10", "trainer.patience=2"], output_dir=run_dir))

    assert summary["epochs_run"] == 4 and summary["stopped_early"] is True
    assert summary["best_epoch"] == 2 and summary["val/acc_best"] == 0.9
    out = capsys.readouterr().out
    line = "early stopping: no better val/acc for 2 epochs; best epoch 2 (val/acc 0.9000)"
    assert line in out and out.index(line) > out.index("\n    4 ")  # after the last epoch's row
    assert [int(r["epoch"]) for r in read_csv(run_dir / "metrics.csv")] == [1, 2, 3, 4]

    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert best["epoch"] == 2 and last["epoch"] == 4
    assert not all(torch.equal(best["model"][k], last["model"][k]) for k in best["model"])
    # the test pass ran on exactly the best checkpoint's weights
    assert all(torch.equal(tested_weights[k], best["model"][k]) for k in best["model"])


def test_patience_zero_disables_early_stopping(make_cfg, monkeypatch):
    scripted = iter([0.9, 0.1, 0.1, 0.1])
    real_evaluate = loop.evaluate

    def fake_evaluate(model, loader, loss_fn, prefix="val", **kwargs):
        metrics = real_evaluate(model, loader, loss_fn, prefix, **kwargs)
        if prefix == "val":
            metrics["val/acc"] = next(scripted)
        return metrics

    monkeypatch.setattr(loop, "evaluate", fake_evaluate)
    summary = run(make_cfg([*TINY_RUN, "trainer.epochs=4", "trainer.patience=0"]))
    assert summary["epochs_run"] == 4 and not summary["stopped_early"] and summary["best_epoch"] == 1


def test_training_learns_the_builtin_digits(make_cfg):
    summary = run(make_cfg(["data=digits", "trainer.epochs=8", "trainer.device=cpu"]))
    assert summary["test/acc"] > 0.85
    assert summary["num_train"] + summary["num_val"] == 1437 and summary["num_test"] == 360


def test_max_steps_per_epoch_limits_the_epoch(make_cfg, monkeypatch):
    seen = []
    real_train = loop.train_one_epoch

    def counting_train(*args, **kwargs):
        metrics = real_train(*args, **kwargs)
        seen.append(metrics.examples)
        return metrics

    monkeypatch.setattr(loop, "train_one_epoch", counting_train)
    summary = run(make_cfg([*TINY_RUN, "trainer.max_steps_per_epoch=2", "data.batch_size=16"]))
    assert seen == [32, 32] and summary["epochs_run"] == 2


@pytest.mark.parametrize(("optimizer", "scheduler"), [("sgd", "none"), ("adam", "cosine"), ("adamw", "step"),
                                                     ("sgd", "onecycle")])  # each of them once
def test_every_optimizer_and_scheduler_trains(make_cfg, optimizer, scheduler):
    overrides = [*TINY_RUN, f"optimizer={optimizer}", f"scheduler={scheduler}", "scheduler.warmup_epochs=1",
                 "trainer.grad_clip=1.0", "trainer.label_smoothing=0.1", "model.init=kaiming"]
    summary = run(make_cfg(overrides))
    assert summary["status"] == "completed" and summary["test/loss"] == summary["test/loss"]  # not NaN


def test_a_finished_run_directory_is_never_reused(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    run(make_cfg(TINY_RUN, output_dir=run_dir))
    before = (run_dir / "summary.json").read_bytes()
    from cnnbench.errors import ConfigError

    with pytest.raises(ConfigError, match="already holds a finished run"):
        run(make_cfg(TINY_RUN, output_dir=run_dir))
    assert (run_dir / "summary.json").read_bytes() == before


def test_cli_default_layout_and_two_job_multirun(cli_main, tmp_path):
    sweep = tmp_path / "sweep"
    result = cli_main("-m", *TINY_RUN, "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    summaries = sorted(sweep.glob("*/summary.json"))
    assert [p.parent.name for p in summaries] == ["0_seed-0", "1_seed-1"]  # the job and what the sweep varies
    overrides = [json.loads(p.read_text())["overrides"] for p in summaries]
    assert "seed=0" in overrides[0] and "seed=1" in overrides[1]
    for job in ("0_seed-0", "1_seed-1"):
        assert (sweep / job / "run.log").is_file() and (sweep / job / ".hydra" / "config.yaml").is_file()
    out = result.stdout + result.stderr
    assert out.count("sweep job 1 of 2 (#0)") == 1 and "#0 : " not in out  # one announcement per job
    assert out.count("changed from the defaults") == 2 and "tta: none" not in out  # no full config dump
    assert f"curves and HParams: tensorboard --logdir {sweep}" in out
    blocks = result.stdout.split("sweep job ")[1:]  # each job's screen starts with its announcement
    assert [block.split(" (#")[0] for block in blocks] == ["1 of 2", "2 of 2"]
    for block in blocks:
        assert "per-class test accuracy" not in block  # single runs only: a sweep keeps it in summary.json
        closing = [line for line in block.splitlines() if line.startswith("test/acc ")]
        assert len(closing) == 1 and "results in" not in closing[0] and len(closing[0]) < 80


def test_channels_last_changes_the_layout_not_the_numbers(make_cfg, tmp_path):
    nhwc = run(make_cfg([*TINY_RUN, "trainer.channels_last=true"], output_dir=tmp_path / "nhwc"))
    nchw = run(make_cfg([*TINY_RUN, "trainer.channels_last=false"], output_dir=tmp_path / "nchw"))
    assert nhwc["val/acc_best"] == pytest.approx(nchw["val/acc_best"], abs=0.03)
    assert nhwc["test/loss"] == pytest.approx(nchw["test/loss"], rel=1e-3)
    # the second conv has 6 input channels, so its layout is unambiguous
    conv_nhwc = load_checkpoint(tmp_path / "nhwc" / "checkpoints" / "best.pt")["model"]["features.3.weight"]
    conv_nchw = load_checkpoint(tmp_path / "nchw" / "checkpoints" / "best.pt")["model"]["features.3.weight"]
    assert conv_nhwc.is_contiguous(memory_format=torch.channels_last) and not conv_nhwc.is_contiguous()
    assert conv_nchw.is_contiguous()


def test_bf16_autocast_trains_on_the_cpu_too(make_cfg, tmp_path):
    overrides = [*TINY_RUN, "trainer.epochs=3"]
    amp = run(make_cfg([*overrides, "trainer.amp=true"], output_dir=tmp_path / "amp"))
    fp32 = run(make_cfg([*overrides, "trainer.amp=false"], output_dir=tmp_path / "fp32"))
    assert amp["status"] == "completed"
    assert amp["test/acc"] == pytest.approx(fp32["test/acc"], abs=0.05)  # same training, bf16 rounding aside
    assert amp["test/loss"] != fp32["test/loss"]  # autocast really ran


@pytest.mark.slow
def test_torch_compile_trains_the_same_and_saves_plain_checkpoints(make_cfg, tmp_path):
    # 576 training images = 9 full batches: one compiled graph, no recompilation for a short last batch
    overrides = [*TINY_RUN, "trainer.channels_last=false", "data.num_train=640", "data.batch_size=64"]
    compiled = run(make_cfg([*overrides, "trainer.compile=true"], output_dir=tmp_path / "compiled"))
    eager = run(make_cfg(overrides, output_dir=tmp_path / "eager"))
    assert compiled["status"] == "completed" and compiled["time/first_step_s"] > 0
    assert compiled["test/loss"] == pytest.approx(eager["test/loss"], rel=1e-3)  # the same math, fused kernels
    weights = load_checkpoint(tmp_path / "compiled" / "checkpoints" / "best.pt")["model"]
    assert set(weights) == set(load_checkpoint(tmp_path / "eager" / "checkpoints" / "best.pt")["model"])
    assert not any(key.startswith("_orig_mod") for key in weights)  # loads into an uncompiled model


def test_a_run_is_told_how_it_was_launched_without_hydra(make_cfg, tmp_path):
    from cnnbench.runtime.job import Job

    run_dir = tmp_path / "told"
    job = Job(overrides=("optimizer.lr=0.05",), choices={"model": "lenet5"}, from_command_line=True)
    cfg = make_cfg([*TINY_RUN, "optimizer.lr=0.05"], output_dir=run_dir)
    summary = run(cfg, job)
    assert summary["overrides"] == ["optimizer.lr=0.05"]
    assert yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) == ["optimizer.lr=0.05"]
    assert not (run_dir / ".hydra" / "hydra.yaml").exists()  # no Hydra, no Hydra settings to keep
