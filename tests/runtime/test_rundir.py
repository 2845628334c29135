"""The run-directory planner: a fresh directory, the one trainer.resume names, or the newest run of the same
config (trainer.resume=auto); a directory that already holds a run is never written into again."""

from __future__ import annotations

import json
import os

import pytest

from cnnbench.errors import ConfigError
from cnnbench.runtime.rundir import (
    ResumePlan,
    RunDirTaken,
    claim,
    config_fingerprint,
    is_live,
    plan_run_dir,
    status_now,
)

CONFIG = {"seed": 0, "model": {"name": "lenet5"}, "trainer": {"epochs": 3, "resume": None, "progress_every": 10},
          "output_dir": "outputs/runs/a"}
PRINT = config_fingerprint(CONFIG)


def make_run(run_dir, status: str | None, fingerprint: str = PRINT, last_pt: bool = True):
    run_dir.mkdir(parents=True)
    if status is not None:
        (run_dir / "summary.json").write_text(json.dumps({"status": status, "fingerprint": fingerprint}))
    if last_pt:
        (run_dir / "checkpoints").mkdir()
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"state")
    return run_dir


def test_the_fingerprint_ignores_where_a_run_writes_and_how_it_resumes_only():
    moved = {**CONFIG, "output_dir": "elsewhere", "trainer": {**CONFIG["trainer"], "resume": "auto",
                                                              "progress_every": 1}}
    assert config_fingerprint(moved) == PRINT
    assert config_fingerprint({**CONFIG, "seed": 1}) != PRINT
    assert CONFIG["output_dir"] == "outputs/runs/a"  # the config given is left as it was


def test_a_fresh_run_writes_where_hydra_says(tmp_path):
    assert plan_run_dir(tmp_path / "new", None, PRINT) == ResumePlan(tmp_path / "new")


@pytest.mark.parametrize("status", ["completed", "running", "interrupted"])
def test_a_directory_that_holds_a_run_is_refused(tmp_path, status):
    used = make_run(tmp_path / "used", status)
    expected = ("already holds a finished run \\(completed\\); choose another hydra.run.dir" if status == "completed"
                else f"already holds a run that can be continued.*trainer.resume={used}")
    with pytest.raises(ConfigError, match=f"hydra.run.dir={used} {expected}"):
        claim(used, resuming=False)


def test_a_run_that_failed_or_died_before_its_first_epoch_leaves_its_directory_usable(tmp_path):
    failed = make_run(tmp_path / "failed", "failed", last_pt=False)  # e.g. a missing dataset
    claim(failed, resuming=False).release()
    killed = make_run(tmp_path / "killed", "running", last_pt=False)
    (killed / ".last.pt.123.abcd.tmp").write_bytes(b"half a checkpoint")  # killed while saving its first one
    claim(killed, resuming=False).release()
    assert not list(killed.glob(".*.tmp"))  # the leftover temporary is gone


def test_a_directory_a_live_process_holds_is_refused_to_everyone_and_free_once_it_is_released(tmp_path):
    held = claim(tmp_path / "run", resuming=False)
    assert is_live(tmp_path / "run") and status_now(tmp_path / "run", {"status": "running"}) == "running"
    for resuming in (False, True):
        with pytest.raises(RunDirTaken, match=rf"in use by a live run \(pid {os.getpid()} on "):
            claim(tmp_path / "run", resuming=resuming)
    held.release()
    assert not is_live(tmp_path / "run") and status_now(tmp_path / "run", {"status": "running"}) == "stale"
    claim(tmp_path / "run", resuming=True).release()


def test_a_file_where_the_run_directory_should_be_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("not a directory")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        claim(tmp_path / "taken", resuming=False)


def test_resume_names_a_run_directory_or_its_last_pt(tmp_path):
    old = make_run(tmp_path / "old", "interrupted")
    last = old / "checkpoints" / "last.pt"
    assert plan_run_dir(tmp_path / "hydra_dir", str(old), PRINT) == ResumePlan(old, last)
    assert plan_run_dir(tmp_path / "hydra_dir", str(last), PRINT) == ResumePlan(old, last)
    with pytest.raises(ConfigError, match=r"trainer.resume=.*nothing: .*nothing does not exist; give a run directory"):
        plan_run_dir(tmp_path / "hydra_dir", str(tmp_path / "nothing"), PRINT)


def test_a_loose_checkpoint_is_refused_in_one_line(tmp_path):
    loose = tmp_path / "downloads" / "weights.pt"
    loose.parent.mkdir()
    loose.write_bytes(b"x")
    for path in (loose, make_run(tmp_path / "r", "interrupted") / "checkpoints" / "best.pt"):
        with pytest.raises(ConfigError, match="expected a run directory or its checkpoints/last.pt"):
            plan_run_dir(tmp_path / "hydra_dir", str(path), PRINT)


def test_a_finished_run_asked_for_is_left_alone(tmp_path):
    done = make_run(tmp_path / "done", "completed")
    plan = plan_run_dir(tmp_path / "hydra_dir", str(done), PRINT)
    assert plan.run_dir == done and plan.checkpoint is None and plan.finished["status"] == "completed"


def test_a_run_stopped_before_its_first_epoch_cannot_be_resumed_and_says_how_to_restart(tmp_path):
    early = make_run(tmp_path / "early", "interrupted", last_pt=False)
    with pytest.raises(ConfigError, match="no checkpoint to continue from .* start it again, its records set aside: "
                                          "python -m cnnbench .*hydra.run.dir="):
        plan_run_dir(tmp_path / "hydra_dir", str(early), PRINT)


def test_auto_continues_the_newest_unfinished_run_of_the_same_config(tmp_path):
    runs = tmp_path / "outputs" / "runs"
    older = make_run(runs / "2026-01-01_00-00-00", "interrupted")
    newer = make_run(runs / "2026-01-02_00-00-00", "interrupted")
    make_run(runs / "2026-01-03_00-00-00", "interrupted", fingerprint="another config")
    os.utime(older / "summary.json", (1, 1))
    plan = plan_run_dir(runs / "2026-01-04_00-00-00", "auto", PRINT)
    assert plan == ResumePlan(newer, newer / "checkpoints" / "last.pt")
    live = claim(newer, resuming=True)  # newer is running now, in another process: auto passes it over
    try:
        assert plan_run_dir(runs / "2026-01-04_00-00-00", "auto", PRINT).run_dir == older
    finally:
        live.release()


def test_auto_leaves_a_finished_run_alone_and_starts_afresh_without_one(tmp_path):
    sweep = tmp_path / "multiruns" / "s"
    done = make_run(sweep / "0", "completed")
    plan = plan_run_dir(sweep / "1", "auto", PRINT)
    assert plan.run_dir == done and plan.finished["status"] == "completed" and plan.checkpoint is None
    assert plan_run_dir(tmp_path / "other" / "x", "auto", "a config never run") == ResumePlan(tmp_path / "other" / "x")
