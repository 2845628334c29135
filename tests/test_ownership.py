"""A run's records are its own: folders cnnbench does not own are refused untouched, a dead run's records are set
aside instead of appended to, a checkpoint proves whose it is, and every signal at any moment ends in one line and a
summary that says so. Real processes where a signal or a kill is the point."""

from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnbench.runtime import ownership
from cnnbench.runtime.files import read_json
from tests.conftest import TINY_RUN, one_line_error, process_env, tb_scalars
from tests.test_resume import file_hashes

# Runs a command with one function replaced: it kills the process, or says it is there (a file) and waits for a
# signal (`<ready>.sent`), so that a test can send one at exactly that moment.
DRIVER = """
import importlib, os, signal, sys, time
from pathlib import Path
module_name, attr, action, ready = sys.argv[1:5]
module = importlib.import_module(module_name)
real = getattr(module, attr)
calls = []
def patched(*args, **kwargs):
    calls.append(1)
    if len(calls) == int(os.environ.get("DRIVER_AT_CALL", "1")):
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        Path(ready).touch()
        for _ in range(1200):
            if Path(ready + ".sent").exists():
                break
            time.sleep(0.05)
    return real(*args, **kwargs)
setattr(module, attr, patched)
from cnnbench.cli import main
sys.exit(main(sys.argv[5:]))
"""
QUICK = [*TINY_RUN, "console.config=none"]


def driven(tmp_path: Path, target: str, action: str, args: list[str], env: dict | None = None) -> tuple:
    module, attr = target.rsplit(".", 1)
    ready = tmp_path / f"ready-{attr}"
    process = subprocess.Popen([sys.executable, "-c", DRIVER, module, attr, action, str(ready), *args],
                               cwd=tmp_path, env={**process_env(), **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    return process, ready


def signalled_at(tmp_path, target: str, signum: int, args: list[str], env: dict | None = None):
    """The process's (exit code, stdout, stderr) after `signum` reached it inside `target`."""
    process, ready = driven(tmp_path, target, "pause", args, env)
    deadline = time.monotonic() + 120
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), process.communicate()
    process.send_signal(signum)
    Path(f"{ready}.sent").touch()
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def one_stderr_line(err: str, *fragments: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "received: finishing" not in line]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def epochs_in(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def assert_unique_ordered_records(run_dir: Path, epochs: int) -> None:
    assert epochs_in(run_dir) == list(range(1, epochs + 1))
    for tag, points in tb_scalars(run_dir).items():
        steps = [step for step, _ in points]
        assert steps == sorted(set(steps)), (tag, steps)


# --- signals at every moment -------------------------------------------------------------------------------

@pytest.mark.parametrize(("target", "signum", "code", "status"), [
    ("cnnbench.train.build_data", signal.SIGTERM, 143, "interrupted"),  # the data loading
    ("cnnbench.train.final_test", signal.SIGTERM, 143, "interrupted"),  # the final test
    ("cnnbench.engine.loop.train_one_epoch", signal.SIGHUP, 129, "interrupted"),  # a closed terminal, in epoch 2
])
def test_a_signal_at_any_moment_ends_in_one_line_and_a_summary_that_says_so(tmp_path, target, signum, code, status):
    run_dir = tmp_path / "run"
    returncode, out, err = signalled_at(tmp_path, target, signum, [*QUICK, f"hydra.run.dir={run_dir}"],
                                        env={"DRIVER_AT_CALL": "2" if "loop" in target else "1"})
    assert returncode == code, err
    assert "Traceback" not in out + err
    assert read_json(run_dir / "summary.json")["status"] == status
    if target.endswith("build_data"):  # nothing to continue
        one_stderr_line(err, "stopped: SIGTERM", "nothing to resume")
        return
    lines = [line for line in err.splitlines() if line.strip() and "received: finishing" not in line]
    assert len(lines) == 2 and lines[0].startswith(f"stopped: {signal.Signals(signum).name}"), err
    printed = shlex.split(lines[1].removeprefix("continue: "))
    continued = subprocess.run([sys.executable, *printed[1:]], cwd=tmp_path, env=process_env(), capture_output=True,
                               text=True)
    assert continued.returncode == 0, continued.stderr
    assert read_json(run_dir / "summary.json")["status"] == "completed"
    assert_unique_ordered_records(run_dir, 2)


def test_sigterm_while_the_data_parallel_ranks_start_leaves_no_process_behind(tmp_path):
    marker = f"cnnbench-test-{os.getpid()}-{time.time_ns()}"
    run_dir = tmp_path / "run"
    returncode, _, err = signalled_at(tmp_path, "cnnbench.runtime.distributed._init", signal.SIGTERM,
                                      [*QUICK, "trainer.devices=2", f"hydra.run.dir={run_dir}"],
                                      env={"CNNBENCH_TEST_MARKER": marker})
    assert returncode == 143, err
    one_stderr_line(err, "stopped:", "SIGTERM")
    assert read_json(run_dir / "summary.json")["status"] == "interrupted"
    deadline = time.monotonic() + 10
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(marker) == []


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


# --- a dead run's records ------------------------------------------------------------------------------------

def test_a_run_killed_before_its_first_checkpoint_restarts_with_its_records_set_aside(tmp_path):
    run_dir = tmp_path / "dead run"
    process, _ = driven(tmp_path, "cnnbench.engine.fit.save_last", "kill", [*QUICK, f"hydra.run.dir={run_dir}"])
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    assert epochs_in(run_dir) == [1] and not (run_dir / "checkpoints" / "last.pt").exists()
    before = file_hashes(run_dir)

    resumed = subprocess.run([sys.executable, "-m", "cnnbench", f"trainer.resume={run_dir}"], cwd=tmp_path,
                             env=process_env(), capture_output=True, text=True)
    line = one_line_error(resumed, "there is no checkpoint to continue from", "start it again")
    assert file_hashes(run_dir) == before
    printed = shlex.split(line.split("its records set aside: ", 1)[1])
    assert printed[:3] == ["python", "-m", "cnnbench"]
    again = subprocess.run([sys.executable, *printed[1:]], cwd=tmp_path / "..", env=process_env(),
                           capture_output=True, text=True)  # pasted from another folder, as a user would
    assert again.returncode == 0, again.stderr
    assert "they are kept in" in again.stderr
    assert_unique_ordered_records(run_dir, 2)
    aside = [p for p in run_dir.iterdir() if p.name.startswith(ownership.SET_ASIDE_PREFIX)]
    assert len(aside) == 1 and epochs_in(aside[0]) == [1]
    assert read_json(run_dir / "summary.json")["status"] == "completed"


def test_a_finished_run_with_its_summary_and_checkpoints_deleted_starts_afresh(cli_main, tmp_path):
    run_dir = tmp_path / "run"
    assert cli_main(*QUICK, f"hydra.run.dir={run_dir}").returncode == 0
    (run_dir / "summary.json").unlink()
    for file in (run_dir / "checkpoints").iterdir():
        file.unlink()
    result = cli_main(*QUICK, "model=resnet_small", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert_unique_ordered_records(run_dir, 2)
    with open(run_dir / "metrics.csv") as f:
        assert len(f.read().splitlines()) == 3  # the header and two rows of the new model only
    assert read_json(run_dir / "summary.json")["model"] == "resnet_small"


# --- folders that are not cnnbench's -------------------------------------------------------------------------

def a_users_folder(folder: Path) -> dict[str, str]:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / ".hydra").mkdir()
    (folder / "summary.json").write_text('{"mine": true}')
    (folder / "metrics.csv").write_text("a,b\n1,2\n")
    (folder / "checkpoints" / "best.pt").write_bytes(b"my weights")
    (folder / ".hydra" / "config.yaml").write_text("mine: 1\n")
    return file_hashes(folder)


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_a_folder_that_is_not_a_cnnbench_run_is_refused_untouched(cli_main, tmp_path, mode):
    folder = tmp_path / "mine"
    before = a_users_folder(folder)
    args = [*QUICK, f"hydra.run.dir={folder}"] if mode == "run" else \
        ["-m", *QUICK, "optimizer.lr=0.1,0.2", f"hydra.sweep.dir={folder}"]
    key = "hydra.run.dir" if mode == "run" else "hydra.sweep.dir"
    one_line_error(cli_main(*args), f"{key}={folder} is not empty and is not a cnnbench run",
                   ".hydra/, checkpoints/, metrics.csv, summary.json")
    assert file_hashes(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == [".hydra", "checkpoints", "metrics.csv", "summary.json"]


def test_the_claim_itself_refuses_a_foreign_folder_before_writing(tmp_path):
    from cnnbench.errors import ConfigError
    from cnnbench.runtime.rundir import claim

    folder = tmp_path / "mine"
    before = a_users_folder(folder)
    with pytest.raises(ConfigError, match="is not a cnnbench run's folder"):
        claim(folder, resuming=False)
    assert file_hashes(folder) == before and not (folder / "run.lock").exists()


def test_the_home_folder_and_system_folders_are_refused(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    env = {**process_env(), "HOME": str(home)}
    result = subprocess.run([sys.executable, "-m", "cnnbench", *QUICK, "hydra.run.dir=~"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    one_line_error(result, f"hydra.run.dir={home} is your home folder itself")
    assert list(home.iterdir()) == []
    monkeypatch.setenv("HOME", str(home))
    assert ownership.protected_folder(Path("/")) == "is the root of a filesystem"
    assert ownership.protected_folder(Path("/etc")) == "is the system folder /etc"
    assert ownership.protected_folder(Path("/etc/cnnbench")) == "is inside the system folder /etc"
    assert ownership.protected_folder(Path("/usr")) == "is the system folder /usr"
    assert ownership.protected_folder(home / "runs") is None
    assert ownership.protected_folder(tmp_path / "runs") is None
    stand_in = tmp_path / "system"  # a folder standing for a system folder: refused like one
    monkeypatch.setattr(ownership, "SYSTEM_FOLDERS", (str(stand_in),))
    assert ownership.protected_folder(stand_in) == f"is the system folder {stand_in}"


def test_the_root_of_the_filesystem_is_refused_before_anything_is_written(cli_main):
    before = sorted(os.listdir("/"))
    # optimizer.lr=0 is refused as well: were the folder let through, validation would still stop the run
    one_line_error(cli_main(*QUICK, "hydra.run.dir=/", "optimizer.lr=0"), "hydra.run.dir=/ is the root of a filesystem")
    assert sorted(os.listdir("/")) == before


# --- checkpoints prove whose they are --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A LeNet-5 run and a ResNet run, each stopped with a last.pt and a best.pt."""
    from tests.conftest import main_in_process

    root = tmp_path_factory.mktemp("two")
    for name, model in (("lenet", "lenet5"), ("resnet", "resnet_small")):
        assert main_in_process(*QUICK, f"model={model}", "trainer.epochs=3", "trainer.max_steps_per_epoch=2",
                               f"hydra.run.dir={root / name}") == 0
    return root


def test_a_last_pt_of_another_model_is_refused_before_any_file_changes(cli_main, two_runs, tmp_path):
    import shutil

    run_dir = tmp_path / "resnet"
    shutil.copytree(two_runs / "resnet", run_dir)
    (run_dir / "summary.json").write_text((run_dir / "summary.json").read_text().replace('"completed"', '"running"'))
    shutil.copy(two_runs / "lenet" / "checkpoints" / "last.pt", run_dir / "checkpoints" / "last.pt")
    before = file_hashes(run_dir)
    one_line_error(cli_main(f"trainer.resume={run_dir}"), str(run_dir / "checkpoints" / "last.pt"),
                   "written by lenet5 on synthetic", "is resnet_small on synthetic")
    assert file_hashes(run_dir) == before


def test_evaluate_refuses_a_best_pt_of_another_model_and_one_without_its_config(cli_main, two_runs, tmp_path):
    import shutil

    from cnnbench.evaluate import main as evaluate_main

    run_dir = tmp_path / "resnet"
    shutil.copytree(two_runs / "resnet", run_dir)
    best = run_dir / "checkpoints" / "best.pt"
    shutil.copy(two_runs / "lenet" / "checkpoints" / "best.pt", best)
    one_line_error(cli_main(f"run={run_dir}", main=evaluate_main), str(best), "written by lenet5",
                   "is resnet_small")
    payload = torch.load(best, weights_only=True)
    payload.pop("config")
    torch.save(payload, best)
    one_line_error(cli_main(f"run={run_dir}", main=evaluate_main), str(best), "has no config")


# --- refusals that leave nothing; answers in one line --------------------------------------------------------

@pytest.mark.parametrize(("args", "fragment"), [
    (["trainer.devices=64"], "trainer.devices=64 is not allowed: expected at most"),
    (["optimizer._target_=os.system"], "optimizer._target_=os.system is not allowed"),
    (["scheduler._target_=builtins.exec"], "scheduler._target_=builtins.exec is not allowed"),
    (["model=" + "x" * 100_000], "model=<100000 characters> cannot be used"),
    (["trainer.epochs=${trainer.epochs}"], "trainer.epochs=${trainer.epochs} cannot be resolved (Recursive"),
    (["optimizer.lr=${oc.env:CNNBENCH_UNSET}"], "optimizer.lr=${oc.env:CNNBENCH_UNSET} cannot be resolved"),
    (["+trainer.foo=1"], "trainer.foo is not a config key"),
])
def test_refused_values_are_one_line_and_leave_no_folder(cli_main, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    one_line_error(cli_main(*QUICK, *args), fragment)
    assert list(tmp_path.iterdir()) == []


def test_a_report_lists_runs_it_cannot_read_and_goes_on(cli_main, two_runs, tmp_path):
    import shutil

    from cnnbench.report import main as report_main

    for name in ("lenet", "resnet"):
        shutil.copytree(two_runs / name, tmp_path / name)
    with open(tmp_path / "lenet" / "metrics.csv", "ab") as f:
        f.write(b"\xff\xfe3,\x00\n")
    (tmp_path / "resnet" / "summary.json").write_bytes(b"\xff{")
    os.mkdir(tmp_path / os.fsdecode(b"odd \xff name"))
    shutil.copy(two_runs / "lenet" / "summary.json", tmp_path / os.fsdecode(b"odd \xff name") / "summary.json")
    result = cli_main(str(tmp_path), main=report_main)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert f"unreadable: {tmp_path / 'lenet' / 'metrics.csv'}: byte 0xff" in result.stderr
    assert f"unreadable: {tmp_path / 'resnet' / 'summary.json'}: byte 0xff" in result.stderr
    assert "odd \ufffd name" in result.stdout


def test_a_second_resume_auto_racing_the_first_passes_over_the_run_it_took(cli_main, tmp_path, monkeypatch):
    import fcntl

    import cnnbench.train as train_module
    from tests.test_resume import stop_after

    runs = tmp_path / "runs"
    with stop_after(5, monkeypatch):
        assert cli_main(*QUICK, f"hydra.run.dir={runs / 'first'}").returncode == 130
    before = file_hashes(runs / "first")
    real_prepare, held = train_module.prepare, []

    def prepare_then_lose_the_race(cfg, job):
        launch = real_prepare(cfg, job)
        if launch.plan.checkpoint is not None and not held:  # another launch claims the run it chose, meanwhile
            fd = os.open(runs / "first" / "run.lock", os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(fd)
        return launch

    monkeypatch.setattr(train_module, "prepare", prepare_then_lose_the_race)
    try:
        result = cli_main(*QUICK, "trainer.resume=auto", f"hydra.run.dir={runs / 'second'}")
    finally:
        for fd in held:
            os.close(fd)
    assert held and result.returncode == 0, result.stderr
    assert read_json(runs / "second" / "summary.json")["status"] == "completed"
    assert_unique_ordered_records(runs / "second", 2)
    assert file_hashes(runs / "first") == before


def test_the_remedies_refusals_name_work_when_followed(cli_main, tmp_path, monkeypatch):
    from tests.test_resume import stop_after

    run_dir = tmp_path / "run"
    with stop_after(5, monkeypatch):
        assert cli_main(*QUICK, f"hydra.run.dir={run_dir}").returncode == 130
    line = one_line_error(cli_main(*QUICK, f"hydra.run.dir={run_dir}"), "already holds a run that can be continued")
    printed = shlex.split(line.split("or continue it: ", 1)[1])
    assert printed[:3] == ["python", "-m", "cnnbench"]
    assert cli_main(*printed[3:]).returncode == 0
    assert_unique_ordered_records(run_dir, 2)

    line = one_line_error(cli_main(*QUICK, f"hydra.run.dir={run_dir}"), "already holds a finished run (completed)")
    assert "choose another hydra.run.dir" in line
    assert cli_main(*QUICK, f"hydra.run.dir={tmp_path / 'another'}").returncode == 0

    mine = tmp_path / "mine"
    a_users_folder(mine)
    line = one_line_error(cli_main(*QUICK, f"hydra.run.dir={mine}"), "choose a new or empty folder")
    (tmp_path / "empty").mkdir()
    assert cli_main(*QUICK, f"hydra.run.dir={tmp_path / 'empty'}").returncode == 0
