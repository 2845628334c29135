"""`python -m cnnbench.evaluate` reloads a run's best checkpoint and reproduces its test numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnnbench.evaluate import main as evaluate_main
from cnnbench.train import run
from tests.conftest import REPO, TINY_RUN


@pytest.fixture
def finished_run(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    summary = run(make_cfg(TINY_RUN, output_dir=run_dir))
    return run_dir, summary


def test_evaluate_reproduces_test_acc_and_per_class(finished_run):
    from rich.console import Console

    from cnnbench.evaluate import evaluate_run

    run_dir, summary = finished_run
    metrics = evaluate_run(run_dir, [], Console(quiet=True))
    assert metrics["test/acc"] == summary["test_acc"]
    assert metrics["test/loss"] == pytest.approx(summary["test_loss"], rel=1e-6)
    assert metrics["per_class_acc"] == summary["per_class_acc"]
    assert metrics["epoch"] == summary["best_epoch"]


def test_evaluate_on_the_validation_split_gives_best_val_acc(finished_run):
    from rich.console import Console

    from cnnbench.evaluate import evaluate_run

    run_dir, summary = finished_run
    metrics = evaluate_run(run_dir, ["data.split=val"], Console(quiet=True))
    assert metrics["val/acc"] == pytest.approx(summary["best_val_acc"], abs=1e-12)


def test_evaluate_cli_prints_the_report(finished_run):
    run_dir, summary = finished_run
    result = subprocess.run([sys.executable, "-m", "cnnbench.evaluate", f"run={run_dir}"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"test/acc {summary['test_acc']:.4f}" in result.stdout and "class_0" in result.stdout
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads(json.dumps(summary))  # untouched


@pytest.mark.parametrize(("args", "fragment"), [
    ([], "usage"),
    (["run=/nonexistent/run"], "does not exist"),
    (["RUN", "data.split=train"], "data.split=train"),
    (["RUN", "data.nope=1"], "data.nope"),
])
def test_evaluate_bad_input_is_one_line(finished_run, capsys, args, fragment):
    run_dir, _ = finished_run
    args = [f"run={run_dir}" if a == "RUN" else a for a in args]
    assert evaluate_main(args) != 0
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
