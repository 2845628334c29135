"""Between runs (cnnbench.launch): a resume continues the saved run and refuses to change it, a finished run is left
as it is, two launches never share a directory, a refused launch writes nothing, and a dead run shows as dead."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from rich.console import Console

from cnnbench.evaluate import evaluate_run
from cnnbench.report import main as report_main
from cnnbench.train import run
from tests.conftest import REPO, RESUMABLE, TINY_RUN, one_line_error, process_env
from tests.test_resume import exact_rows, file_hashes, interrupted_run, outcome


def summary_of(run_dir) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# --- a resume continues the saved run ---------------------------------------------------------------------------

def test_trainer_resume_alone_continues_the_saved_run_exactly(cli_main, make_cfg, tmp_path, monkeypatch,
                                                              uninterrupted):
    reference_dir, reference = uninterrupted
    run_dir = interrupted_run(make_cfg, monkeypatch, tmp_path / "run")  # synthetic data, 3 epochs
    result = cli_main(f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'launch'}")  # nothing else typed
    assert result.returncode == 0, result.stderr
    summary = summary_of(run_dir)
    assert summary["dataset"] == "synthetic" and summary["epochs_run"] == 3  # not the default digits, 30 epochs
    assert outcome(summary) == outcome(reference) and exact_rows(run_dir) == exact_rows(reference_dir)
    assert not (tmp_path / "launch").exists()  # the directory Hydra made for this launch was not needed


def test_a_resume_that_would_change_the_run_is_refused_and_changes_nothing(cli_main, make_cfg, tmp_path, monkeypatch):
    run_dir = interrupted_run(make_cfg, monkeypatch, tmp_path / "run")
    before = file_hashes(run_dir)
    for change, fragment in ((["data=digits"], "data.name=digits (saved: synthetic)"),
                             (["optimizer.lr=0.5"], "optimizer.lr=0.5 (saved: 0.02)"),
                             (["trainer.label_smoothing=0.1"], "trainer.label_smoothing=0.1 (saved: 0.0)")):
        result = cli_main(*change, f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'launch'}")
        one_line_error(result, "trainer.resume continues the run saved in", fragment)
        assert result.returncode == 2
    assert file_hashes(run_dir) == before


def test_more_epochs_extend_a_run_and_say_what_the_schedule_does(cli_main, make_cfg, tmp_path, monkeypatch):
    overrides = [*RESUMABLE, "scheduler=step", "scheduler.step_epochs=1", "scheduler.gamma=0.5"]
    run_dir = interrupted_run(make_cfg, monkeypatch, tmp_path / "run", overrides)
    result = cli_main("trainer.epochs=4", f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'launch'}")
    assert result.returncode == 0, result.stderr
    assert "trainer.epochs=4 (saved: 3): the learning-rate schedule keeps its 3-epoch length; after it, it goes on " \
           "dividing the lr every 1 epochs" in result.stdout
    lrs = [float(row["lr"]) for row in exact_rows(run_dir)]
    assert lrs == pytest.approx([0.02, 0.01, 0.005, 0.0025])  # the step schedule goes on as it was built
    assert summary_of(run_dir)["epochs_run"] == 4


def test_more_epochs_on_a_schedule_that_has_ended_are_refused(cli_main, make_cfg, tmp_path, monkeypatch):
    run_dir = interrupted_run(make_cfg, monkeypatch, tmp_path / "run", after_step=40)  # in epoch 3; cosine to 0
    result = cli_main("trainer.epochs=5", f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'launch'}")
    one_line_error(result, "trainer.epochs=5 (saved: 3) is not allowed on resume with scheduler=cosine",
                   "it would train at lr 0")
    result = cli_main("trainer.epochs=1", f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'launch'}")
    one_line_error(result, "trainer.epochs=1 is not allowed on resume: the run has already trained 2 epochs")


def test_a_finished_run_is_left_as_it_is(cli_main, make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    run(make_cfg(TINY_RUN, output_dir=run_dir))
    before = file_hashes(run_dir)
    for spec in (run_dir, run_dir / "checkpoints" / "last.pt"):
        result = cli_main(f"trainer.resume={spec}", f"hydra.run.dir={tmp_path / 'launch'}")
        assert result.returncode == 0 and "already finished (completed" in result.stdout
        assert "a finished run is left as it is" in result.stdout
    assert file_hashes(run_dir) == before


# --- one directory, one run ---------------------------------------------------------------------------------------

def test_a_refused_launch_leaves_the_other_runs_records_as_they_were(cli_main, tmp_path):
    run_dir = tmp_path / "run"
    assert cli_main(*TINY_RUN, "trainer.epochs=1", f"hydra.run.dir={run_dir}").returncode == 0
    before = file_hashes(run_dir)
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml", "run.log"} <= before.keys()
    result = cli_main(*TINY_RUN, "model=lenet", f"hydra.run.dir={run_dir}")
    one_line_error(result, f"hydra.run.dir={run_dir} already holds a finished run (completed); choose another")
    assert file_hashes(run_dir) == before  # Hydra's records, the log, the summary: all as the first run left them


def test_two_processes_started_together_get_two_complete_runs(tmp_path):
    """Two real processes at once on the default, clock-named directory (here a clock that ticks once a year, so
    that they meet): the second takes <name>_2, and each run is complete and its own."""
    named_by_clock = f"hydra.run.dir={tmp_path}/runs/" + "${now:%Y}"
    processes = [subprocess.Popen([sys.executable, "-m", "cnnbench", *TINY_RUN, "trainer.epochs=1", f"seed={seed}",
                                   named_by_clock], cwd=REPO, env=process_env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], errors
    year = time.strftime("%Y")
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert names == [year, f"{year}_2"]
    summaries = [summary_of(tmp_path / "runs" / name) for name in names]
    assert sorted(s["seed"] for s in summaries) == [0, 1] and {s["status"] for s in summaries} == {"completed"}
    for name in names:  # one row per epoch: no run wrote into the other's files
        assert len((tmp_path / "runs" / name / "metrics.csv").read_text().splitlines()) == 2


def test_a_launch_into_the_directory_of_a_live_run_is_one_line_and_writes_nothing(cli_main, tmp_path):
    from cnnbench.runtime.rundir import claim

    held = claim(tmp_path / "run", resuming=False)  # another process's run, starting up
    try:
        result = cli_main(*TINY_RUN, f"hydra.run.dir={tmp_path / 'run'}")
    finally:
        held.release()
    one_line_error(result, f"hydra.run.dir={tmp_path / 'run'} is in use by a live run (pid {os.getpid()} on ",
                   "wait for it to end, or choose another hydra.run.dir")
    assert result.returncode == 2 and sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.lock"]


# --- a dead run -------------------------------------------------------------------------------------------------

def test_a_killed_run_shows_as_stale_and_resume_auto_continues_it(cli_main, tmp_path):
    sweep_free = [*TINY_RUN, "data.num_train=1500", "trainer.epochs=4", "trainer.patience=0"]
    run_dir = tmp_path / "runs" / "killed"
    process = subprocess.Popen([sys.executable, "-m", "cnnbench", *sweep_free, f"hydra.run.dir={run_dir}"],
                               cwd=REPO, env=process_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if ((run_dir / "summary.json").is_file() and (json.loads((run_dir / "summary.json").read_text() or "{}")
                                                      .get("epochs_done") or 0) >= 1):
            process.send_signal(signal.SIGKILL)  # after its first epoch
            break
        time.sleep(0.02)
    process.wait(timeout=60)
    if process.returncode == 0:
        pytest.skip("the run finished before the kill")
    summary = summary_of(run_dir)
    assert summary["status"] == "running" and summary["owner"]["pid"] == process.pid  # what it wrote last
    assert summary["epochs_done"] >= 1

    assert report_main([str(tmp_path / "runs"), f"report.out={tmp_path / 'report'}"]) == 0
    row = (tmp_path / "report" / "leaderboard.csv").read_text().splitlines()[1].split(",")
    assert "stale" in row and str(summary["epochs_done"]) in row  # dead, with its last finished epoch
    out = Console(record=True, width=200)
    evaluate_run(run_dir, [], out)
    assert "dead (stale)" in out.export_text()

    result = cli_main(*sweep_free, "trainer.resume=auto", f"hydra.run.dir={tmp_path / 'runs' / 'again'}")
    assert result.returncode == 0, result.stderr
    assert summary_of(run_dir)["status"] == "completed" and summary_of(run_dir)["epochs_run"] == 4
    assert not (tmp_path / "runs" / "again").exists()
    assert os.path.isfile(run_dir / "run.lock")
