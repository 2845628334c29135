"""Faults end in one line, never a traceback (that goes to run.log), with the exit code, and summary.json says what
happened wherever it can still be written; what was written before is left as it was."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import cnnbench
import cnnbench.engine.fit as fit_module
import cnnbench.train as train_module
from cnnbench.cli import override_problem
from cnnbench.config import keys as config_keys
from cnnbench.config import validate_config
from cnnbench.engine.setup import cudnn_benchmark
from cnnbench.errors import ConfigError, Diverged
from cnnbench.evaluate import main as evaluate_main
from cnnbench.inspect import main as inspect_main
from cnnbench.report import main as report_main
from tests.conftest import TINY_RUN, one_line_error, random_images, stopped_with_continue, write_idx
from tests.test_resume import exact_rows, file_hashes, interrupted_run, outcome


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture
def mount(tmp_path):
    """mount(size, read_only=False): a small tmpfs of its own (a full disk, a read-only disk); skips without root."""
    mounted = []

    def _mount(size: str = "1m", read_only: bool = False) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(where)
        return where

    yield _mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


# --- bad input ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "fragments"), [
    (["data.resize=100000"], ["data.resize=100000 is not allowed: expected an integer in [1, 4096]"]),
    (["~model"], ["model is missing from the config", "model=<name>"]),
    (["seed=99999999999999999999"], ["seed=99999999999999999999 is not allowed"]),
])
def test_values_that_used_to_print_a_traceback_are_one_line(cli_main, tmp_path, args, fragments):
    result = cli_main(*TINY_RUN, *args, f"hydra.run.dir={tmp_path / 'run'}")
    one_line_error(result, *fragments)
    assert result.returncode == 2


def test_inspect_refuses_a_huge_resize_in_one_line(cli_main):
    result = cli_main("model=lenet", "data.resize=100000", main=inspect_main)
    one_line_error(result, "data.resize=100000 is not allowed")


def test_an_invalid_yaml_file_is_named_in_one_line_even_in_a_group_the_run_does_not_use(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    shutil.copytree(cnnbench.CONF_DIR, conf)
    (conf / "optimizer" / "broken.yaml").write_text("lr: [unclosed\n")
    monkeypatch.setattr(config_keys, "CONF_DIR", str(conf))
    config_keys._option_files.cache_clear()
    try:
        from tests.conftest import composed

        with pytest.raises(ConfigError, match=r"optimizer/broken.yaml is not valid YAML .*fix or remove it$"):
            validate_config(composed(tuple(TINY_RUN)))
        monkeypatch.setattr("cnnbench.cli.CONF_DIR", str(conf))
        (conf / "model" / "lenet5.yaml").write_text("name: lenet5\n  bad: indentation\n")
        problem = override_problem(["model=lenet5"])
        assert problem.startswith("a config file is not valid YAML") and "\n" not in problem
    finally:
        config_keys._option_files.cache_clear()


def test_labels_beyond_the_class_count_name_the_file(cli_main, tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    for prefix, count in (("train", 200), ("t10k", 50)):
        images, labels = random_images(count, (28, 28), seed=0)
        labels[7] = 12
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    result = cli_main("data=mnist", f"data.root={tmp_path / 'data'}", "data.download=false", "trainer.device=cpu",
                      f"hydra.run.dir={tmp_path / 'run'}")
    one_line_error(result, "the train labels hold 12 (at image 7), but there are 10 classes (0 to 9)")
    assert result.returncode == 1


def test_a_run_directory_that_is_a_file_is_one_line(cli_main, tmp_path):
    (tmp_path / "file").write_text("x")
    result = cli_main(*TINY_RUN, f"hydra.run.dir={tmp_path / 'file'}")
    one_line_error(result, f"hydra.run.dir={tmp_path / 'file'} is a file, not a directory")
    assert (tmp_path / "file").read_text() == "x"


def test_a_folder_that_is_not_writable_is_one_line(cli_main, mount, monkeypatch):
    monkeypatch.chdir(mount(read_only=True))  # the default run dir, outputs/..., cannot be made here
    result = cli_main(*TINY_RUN)
    one_line_error(result, "hydra.run.dir=outputs/runs/", "is not writable")
    assert result.returncode == 2


def test_a_sweep_checks_every_job_before_the_first_one_trains(cli_main, tmp_path):
    result = cli_main("-m", *TINY_RUN, "optimizer.lr=0.01,-1", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    one_line_error(result, "optimizer.lr=-1 is not allowed", "in the sweep's job with optimizer.lr=-1; no job has run")
    assert result.returncode == 2 and not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(("override", "fragment"), [
    ("model.name=resnet18", "model.name=resnet18 is not allowed: best.pt holds the weights of the run's own model"),
    ("data.name=cifar10", "data.num_train is not a config key"),
    ("data.resize=40", "best.pt was trained on 10 classes of 1x28x28 images; these overrides give 10 classes of "
                       "1x40x40 images"),
])
def test_evaluate_with_another_model_or_data_shape_is_one_line(cli_main, make_cfg, tmp_path, override, fragment):
    run_dir = tmp_path / "run"
    train_module.run(make_cfg(TINY_RUN, output_dir=run_dir))
    one_line_error(cli_main(f"run={run_dir}", override, main=evaluate_main), fragment)


# --- faults while running ---------------------------------------------------------------------------------------

def test_a_full_disk_is_one_line_and_the_summary_says_failed(cli_main, mount):
    run_dir = mount("600k") / "run"  # room for the first checkpoints, not for last.pt of the next epochs
    result = cli_main(*TINY_RUN, "trainer.epochs=5", "trainer.patience=0", f"hydra.run.dir={run_dir}")
    one_line_error(result, "no space left on the device while writing")
    assert result.returncode == 1
    summary = summary_of(run_dir)
    assert summary["status"] == "failed" and "no space left" in summary["error"]


def test_write_permission_lost_in_the_middle_of_a_run(cli_main, monkeypatch, tmp_path):
    """After epoch 1 every new file in the run directory is refused, as the kernel refuses it when the
    directory's permissions change (root, who runs these tests, would not be refused by a chmod)."""
    import builtins

    import cnnbench.runtime.files as files

    run_dir = tmp_path / "run"
    real_save_last, calls = fit_module.save_last, {"n": 0}

    def refusing_open(path, *args, **kwargs):
        if str(path).startswith(str(run_dir)) and calls["n"] >= 2:
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    def count_saves(*args, **kwargs):
        calls["n"] += 1
        return real_save_last(*args, **kwargs)

    monkeypatch.setattr(files, "open", refusing_open, raising=False)
    monkeypatch.setattr(fit_module, "save_last", count_saves)
    result = cli_main(*TINY_RUN, "trainer.epochs=4", "trainer.patience=0", f"hydra.run.dir={run_dir}")
    one_line_error(result, "/checkpoints/.last.pt.", "is not writable (Permission denied)")
    assert result.returncode == 1 and summary_of(run_dir)["status"] == "running"  # it could not be rewritten
    assert report_main([str(run_dir), f"report.out={tmp_path / 'report'}"]) == 0
    assert ",stale," in (tmp_path / "report" / "leaderboard.csv").read_text()  # ...and the report says it is dead


def test_ctrl_c_during_start_up_is_one_line_and_an_interrupted_summary(cli_main, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "build_data", interrupted)
    result = cli_main(*TINY_RUN, f"hydra.run.dir={tmp_path / 'run'}")
    one_line_error(result, "interrupted (Ctrl-C); no epoch had finished, so there is nothing to resume")
    assert result.returncode == 130 and summary_of(tmp_path / "run")["status"] == "interrupted"


def test_ctrl_c_during_the_final_test_resumes_into_the_test(cli_main, tmp_path, monkeypatch):
    real_test = train_module.final_test

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "final_test", interrupted)
    run_dir = tmp_path / "run"
    result = cli_main(*TINY_RUN, f"hydra.run.dir={run_dir}")
    stopped_with_continue(result, run_dir, "stopped: interrupted (Ctrl-C); last.pt keeps the last finished epoch")
    assert result.returncode == 130 and summary_of(run_dir)["status"] == "interrupted"
    monkeypatch.setattr(train_module, "final_test", real_test)
    resumed = cli_main(f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'launch'}")
    assert resumed.returncode == 0 and summary_of(run_dir)["status"] == "completed"


def test_a_second_ctrl_c_inside_the_checkpoint_save_keeps_the_last_good_one(cli_main, tmp_path, monkeypatch):
    real_save_last = fit_module.save_last
    calls = {"n": 0}

    def interrupted_second_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as a second Ctrl-C inside torch.save
        return real_save_last(*args, **kwargs)

    monkeypatch.setattr(fit_module, "save_last", interrupted_second_save)
    run_dir = tmp_path / "run"
    result = cli_main(*TINY_RUN, "trainer.epochs=3", f"hydra.run.dir={run_dir}")
    stopped_with_continue(result, run_dir, "interrupted (Ctrl-C); last.pt keeps the last finished epoch")
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def test_a_resume_after_a_power_cut_left_nul_bytes_in_metrics_csv(cli_main, make_cfg, tmp_path, monkeypatch,
                                                                 uninterrupted):
    reference_dir, reference = uninterrupted
    run_dir = interrupted_run(make_cfg, monkeypatch, tmp_path / "run", after_step=40)  # 2 epochs in metrics.csv
    metrics = run_dir / "metrics.csv"
    metrics.write_bytes(metrics.read_bytes()[:-30] + b"\0" * 50)  # the last row half written, then zeros
    result = cli_main(f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'launch'}")
    assert result.returncode == 0, result.stderr
    assert outcome(summary_of(run_dir)) == outcome(reference) and exact_rows(run_dir) == exact_rows(reference_dir)


def test_divergence_before_any_checkpoint_does_not_claim_one():
    assert "no epoch had finished, so there is no checkpoint" in str(Diverged(3, 2.3, epoch=1))
    assert "best.pt and last.pt keep the last good epoch (4)" in str(Diverged(3, 2.3, epoch=5))


def test_cudnn_times_its_kernels_only_when_the_run_need_not_be_deterministic():
    assert cudnn_benchmark(torch.device("cuda"), deterministic=False)
    assert not cudnn_benchmark(torch.device("cuda"), deterministic=True)
    assert not cudnn_benchmark(torch.device("cpu"), deterministic=False)


def test_a_refused_resume_of_a_live_run_names_its_owner(cli_main, make_cfg, tmp_path, monkeypatch):
    from cnnbench.runtime.rundir import claim

    run_dir = interrupted_run(make_cfg, monkeypatch, tmp_path / "run")
    before = file_hashes(run_dir)
    held = claim(run_dir, resuming=True)  # as if the run were going on in another process
    try:
        result = cli_main(f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'launch'}")
    finally:
        held.release()
    one_line_error(result, f"trainer.resume={run_dir}: the run in {run_dir} is alive (pid ", "wait for it to end")
    assert file_hashes(run_dir) == before and result.returncode == 2
