"""`python -m cnnbench.evaluate` reloads a run's best checkpoint and reproduces its test numbers."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from rich.console import Console

from cnnbench import CONF_DIR
from cnnbench.evaluate import evaluate_run
from cnnbench.evaluate import main as evaluate_main
from cnnbench.train import run
from tests.conftest import TINY_RUN, one_line_error


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished run that every test here reads (evaluate writes nothing, as the last tests checks)."""
    run_dir = tmp_path_factory.mktemp("evaluate") / "run"
    with initialize_config_dir(CONF_DIR, version_base=None):
        cfg = compose("config", overrides=TINY_RUN)
    with open_dict(cfg):
        cfg.output_dir = str(run_dir)
    return run_dir, run(cfg)


def test_evaluate_reproduces_test_acc_and_per_class(finished_run):
    run_dir, summary = finished_run
    metrics = evaluate_run(run_dir, [], Console(quiet=True))
    assert metrics["test/acc"] == summary["test/acc"]
    assert metrics["test/loss"] == pytest.approx(summary["test/loss"], rel=1e-6)
    assert metrics["test/per_class_acc"] == summary["test/per_class_acc"]
    assert metrics["epoch"] == summary["best_epoch"]


def test_evaluate_on_the_validation_split_gives_best_val_acc(finished_run):
    run_dir, summary = finished_run
    metrics = evaluate_run(run_dir, [], Console(quiet=True), split="val")
    assert metrics["val/acc"] == pytest.approx(summary["val/acc_best"], abs=1e-12)


def test_evaluate_command_prints_the_report_and_writes_nothing(cli_main, finished_run):
    run_dir, summary = finished_run
    before = sorted(p for p in run_dir.rglob("*"))
    result = cli_main(f"run={run_dir}", "data.split=test", "trainer.device=cpu", main=evaluate_main)
    assert result.returncode == 0, result.stderr
    assert f"test/acc {summary['test/acc']:.4f}" in result.stdout and "class_0" in result.stdout
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads(json.dumps(summary))  # untouched
    assert sorted(p for p in run_dir.rglob("*")) == before


@pytest.mark.parametrize(("args", "fragment"), [
    ([], "usage"),
    (["run=/nonexistent/run"], "does not exist"),
    (["RUN", "data.split=train"], "data.split=train"),
    (["RUN", "data.nope=1"], "data.nope"),
    (["RUN", "optimizer.lr=0"], "optimizer.lr=0 is not allowed"),
    (["RUN", "+data.x=1"], "+data.x=1 is not allowed here"),
    (["RUN", "some/path"], "Error parsing override 'some/path'"),
])
def test_evaluate_bad_input_is_one_line(cli_main, finished_run, args, fragment):
    run_dir, _ = finished_run
    args = [f"run={run_dir}" if a == "RUN" else a for a in args]
    one_line_error(cli_main(*args, main=evaluate_main), fragment)
