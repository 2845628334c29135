"""A sweep stopped with Ctrl-C and continued by pasting the `continue:` line it printed; a different sweep into
the same folder; the same sweep twice at once; a joblib sweep interrupted. Real processes and real signals."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import cnnbench.report
from tests.conftest import TINY_RUN, one_line_error, process_env, tb_scalars
from tests.test_resume import file_hashes

# 21 steps an epoch: a signal sent after a job's first epoch lands in the middle of its training
SWEEP = [*TINY_RUN, "data.num_train=1300", "trainer.epochs=3", "trainer.patience=0", "console.config=none"]
ODD_NAME = "my sweeps=1,2 'ü' ~x"  # every character Hydra's grammar or a shell would otherwise read


def started(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=cwd, env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def interrupted_after(process: subprocess.Popen, marker: str, signum=signal.SIGINT, group: bool = False) -> str:
    """The process's output; `signum` is sent once a line of the job named by `marker` showed its first epoch."""
    lines, seen, sent = [], False, False
    for line in process.stdout:
        lines.append(line)
        seen = seen or marker in line
        if seen and not sent and line.lstrip().startswith("1 "):
            os.killpg(process.pid, signum) if group else process.send_signal(signum)
            sent = True
    process.wait(timeout=300)
    assert sent, "".join(lines)
    return "".join(lines)


def epochs_of(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def ledger_of(sweep_dir: Path) -> dict:
    return json.loads((sweep_dir / "sweep.json").read_text())


def test_an_interrupted_sweep_is_continued_by_the_command_it_printed(cli_main, monkeypatch, tmp_path):
    sweep_dir = tmp_path / ODD_NAME
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = started([sys.executable, "-m", "cnnbench", "-m", *SWEEP, "optimizer.lr=0.05,0.02,0.01",
                     f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    output = interrupted_after(first, "sweep job 2 of 3")
    assert first.returncode == 130 and "Traceback" not in output
    last = output.strip().splitlines()[-1]
    assert last.startswith("continue: python -m cnnbench -m ")
    states = {job["folder"]: job["state"] for job in ledger_of(sweep_dir)["jobs"]}
    assert states == {"0_lr-0.05": "completed", "1_lr-0.02": "interrupted", "2_lr-0.01": "pending"}
    assert not (sweep_dir / "2_lr-0.01").exists()
    done_before = file_hashes(sweep_dir / "0_lr-0.05")
    multirun_yaml = (sweep_dir / "multirun.yaml").read_bytes()

    command = shlex.split(last.removeprefix("continue: "))  # as bash reads the pasted line
    assert command[:3] == ["python", "-m", "cnnbench"]
    second = subprocess.run([sys.executable, *command[1:]], cwd=elsewhere, env=process_env(), capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    closing = [line for line in second.stdout.splitlines() if line.startswith("sweep ")][-1]
    assert closing.startswith("sweep finished: 3 jobs, 3 completed (this launch ran 2: 2 completed)")
    assert "sweep job 1 of 3 (#0) already completed" in second.stdout
    assert "resuming at epoch" in second.stdout
    assert file_hashes(sweep_dir / "0_lr-0.05") == done_before  # not trained again
    assert (sweep_dir / "multirun.yaml").read_bytes() == multirun_yaml
    for folder in ("0_lr-0.05", "1_lr-0.02", "2_lr-0.01"):
        assert epochs_of(sweep_dir / folder) == [1, 2, 3], folder
        for tag, points in tb_scalars(sweep_dir / folder).items():
            steps = [step for step, _ in points]
            assert len(steps) == len(set(steps)), (folder, tag, steps)
    # the paths it printed work when pasted: the leaderboard command, from another folder
    report = shlex.split(closing.split("leaderboard: ")[1].split("; curves")[0])
    assert report[:3] == ["python", "-m", "cnnbench.report"]
    monkeypatch.chdir(elsewhere)
    shown = cli_main(*report[3:], main=cnnbench.report.main)
    assert shown.returncode == 0 and "lr-0.02" in shown.stdout, shown.stderr


def test_a_different_sweep_into_the_same_folder_is_refused_and_changes_nothing(cli_main, tmp_path):
    sweep_dir = tmp_path / "sweep"
    assert cli_main("-m", *TINY_RUN, "trainer.epochs=1", "seed=0,1", f"hydra.sweep.dir={sweep_dir}").returncode == 0
    before = file_hashes(sweep_dir)
    result = cli_main("-m", *TINY_RUN, "trainer.epochs=1", "seed=2", f"hydra.sweep.dir={sweep_dir}")
    line = one_line_error(result, f"hydra.sweep.dir={sweep_dir} holds another sweep", "seed=0,1",
                          "continue that one with: python -m cnnbench -m")
    assert result.returncode == 2 and "choose another hydra.sweep.dir" in line
    assert file_hashes(sweep_dir) == before  # multirun.yaml, the ledger, the job folders
    again = cli_main("-m", *TINY_RUN, "trainer.epochs=1", "seed=0,1", f"hydra.sweep.dir={sweep_dir}")
    assert again.returncode == 0 and "sweep finished: 2 jobs, 2 completed (this launch ran 0)" in again.stdout
    assert {k: v for k, v in file_hashes(sweep_dir).items() if k != "sweep.json"} == \
        {k: v for k, v in before.items() if k != "sweep.json"}


def test_the_same_sweep_twice_at_once_runs_each_job_once(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = [sys.executable, "-m", "cnnbench", "-m", *SWEEP, "trainer.epochs=2", "seed=0,1,2",
            f"hydra.sweep.dir={sweep_dir}"]
    processes = [started(args, cwd=tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    book = ledger_of(sweep_dir)
    assert [job["state"] for job in book["jobs"]] == ["completed"] * 3
    ran = [int(o.split("this launch ran ")[1].split(":")[0].split(")")[0]) for o in outputs]
    assert sum(ran) == 3, outputs  # each job by one launch, each launch counting only what it ran
    for job in book["jobs"]:
        assert epochs_of(sweep_dir / job["folder"]) == [1, 2]
    assert all("Traceback" not in o for o in outputs)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="the launch finds its workers in /proc")
def test_an_interrupted_joblib_sweep_saves_its_workers_and_says_how_to_continue(tmp_path):
    sweep_dir = tmp_path / "sweep"
    process = started([sys.executable, "-m", "cnnbench", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                       *SWEEP, "trainer.epochs=4", "seed=0,1", f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    output = interrupted_after(process, "sweep job", group=True)  # Ctrl-C: the whole process group
    assert process.returncode == 130 and "Traceback" not in output and "KeyboardInterrupt" not in output
    assert output.strip().splitlines()[-1].startswith("continue: python -m cnnbench -m hydra/launcher=joblib")
    book = ledger_of(sweep_dir)
    assert {job["state"] for job in book["jobs"]} <= {"interrupted", "pending", "completed"}
    for job in book["jobs"]:
        folder = sweep_dir / job["folder"]
        if job["state"] == "interrupted":
            assert json.loads((folder / "summary.json").read_text())["status"] == "interrupted"
            assert (folder / "checkpoints" / "last.pt").is_file()
        assert not list(sweep_dir.glob("**/.*.tmp"))
    continued = subprocess.run([sys.executable, *shlex.split(output.strip().splitlines()[-1][10:])[1:]],
                               cwd=tmp_path, env=process_env(), capture_output=True, text=True, timeout=300)
    assert continued.returncode == 0 and "sweep finished: 2 jobs, 2 completed" in continued.stdout, continued.stderr
    for job in ledger_of(sweep_dir)["jobs"]:
        assert epochs_of(sweep_dir / job["folder"]) == [1, 2, 3, 4]


def test_fail_fast_stops_at_the_first_failure_and_leaves_the_rest_to_continue(cli_main, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = cli_main("-m", *TINY_RUN, "trainer.epochs=1", "optimizer.lr=1e12,0.01", "sweep.fail_fast=true",
                      f"hydra.sweep.dir={sweep_dir}")
    assert result.returncode == 1
    assert "sweep job 1 of 2 (#0) (" in result.stderr and "diverged: training diverged" in result.stderr
    assert [job["state"] for job in ledger_of(sweep_dir)["jobs"]] == ["diverged", "pending"]
    assert result.stdout.strip().splitlines()[-1].startswith("continue: ")
