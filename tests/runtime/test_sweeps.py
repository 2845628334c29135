"""Sweeps through Hydra's plugins: joblib jobs in parallel, the SLURM launcher's config, Optuna search presets,
the share of cores each parallel job takes, and the one-line error when a plugin is not installed."""

from __future__ import annotations

import csv
import json
import os
import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from omegaconf import OmegaConf

from cnnbench import CONF_DIR
from cnnbench.cli import override_problem, run_hydra_app
from cnnbench.config import validate_config
from cnnbench.report import main as report_main
from cnnbench.runtime import sweeps
from tests.conftest import TINY_RUN, main_in_process

LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", re.MULTILINE)


def presets() -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / "hparams_search").glob("*.yaml"))


def hydra_node(*overrides: str):
    """The composed `hydra` node, as a job sees it in HydraConfig."""
    with initialize_config_dir(CONF_DIR, version_base=None):
        return compose("config", overrides=list(overrides), return_hydra_config=True).hydra


# --- joblib: jobs at the same time, each in its own process -------------------------------------------------

@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory) -> Path:
    sweep = tmp_path_factory.mktemp("joblib") / "sweep"
    assert main_in_process("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY_RUN,
                           "optimizer.lr=0.01,0.05", f"hydra.sweep.dir={sweep}") == 0
    return sweep


def log_window(run_log: Path) -> tuple[datetime, datetime]:
    """The times of the first and the last record of a run's log."""
    stamps = LOG_TIME.findall(run_log.read_text())
    return datetime.strptime(stamps[0], "%Y-%m-%d %H:%M:%S,%f"), datetime.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S,%f")


def test_joblib_sweep_runs_its_jobs_at_the_same_time(joblib_sweep):
    jobs = sorted(p for p in joblib_sweep.iterdir() if (p / ".hydra").is_dir())
    assert [p.name for p in jobs] == ["0_lr-0.01", "1_lr-0.05"]  # resolved in the workers too
    assert [json.loads((p / "summary.json").read_text())["status"] for p in jobs] == ["completed", "completed"]
    (start_0, end_0), (start_1, end_1) = (log_window(p / "run.log") for p in jobs)
    assert max(start_0, start_1) < min(end_0, end_1), "the two jobs' logs do not overlap: they ran one after the other"


def test_report_lists_both_jobs_of_the_joblib_sweep(joblib_sweep, tmp_path):
    assert report_main([str(joblib_sweep), f"report.out={tmp_path}"]) == 0
    with (tmp_path / "leaderboard.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert sorted((row["run"], row["optimizer.lr"], row["status"]) for row in rows) == [
        ("0_lr-0.01", "0.01", "completed"), ("1_lr-0.05", "0.05", "completed")]


# --- Optuna presets --------------------------------------------------------------------------------------------

def test_optuna_search_writes_the_best_parameters(cli_main, tmp_path):
    sweep = tmp_path / "search"
    tiny = [o for o in TINY_RUN if not o.startswith("data.batch_size=")]  # the preset searches the batch size
    result = cli_main("hparams_search=optuna", "hydra.sweeper.n_trials=2", *tiny, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    params = best["best_params"]
    assert set(params) == {"optimizer.lr", "optimizer.weight_decay", "data.batch_size"}
    assert 1e-4 <= params["optimizer.lr"] <= 0.5 and params["data.batch_size"] in (32, 64, 128, 256)
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert [s["status"] for s in summaries] == ["completed", "completed"]
    assert best["best_value"] == max(s["val/acc_best"] for s in summaries)  # maximised: the best run's val/acc


def test_a_failing_trial_is_ranked_last_and_the_search_goes_on(cli_main, tmp_path):
    # lr=1e30 diverges at once: the job fails, returns -inf (Optuna refuses NaN) and the search continues
    sweep = tmp_path / "search"
    result = cli_main("hparams_search=optuna", "hydra.sweeper.n_trials=2", "optimizer.lr=choice(1e30)", *TINY_RUN,
                     f"hydra.sweep.dir={sweep}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "sweep finished: 2 jobs, 2 diverged" in result.stdout
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["best_value"] == float("-inf")


@pytest.mark.parametrize("preset", presets())
def test_every_preset_maximises_val_acc_with_a_seeded_tpe_search(make_cfg, preset):
    hydra_cfg = hydra_node(f"hparams_search={preset}")
    sweeper = hydra_cfg.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and isinstance(sweeper.sampler.seed, int)
    assert hydra_cfg.mode == RunMode.MULTIRUN and sweeper.n_trials >= 2 and sweeper.n_jobs >= 1
    assert sweeper.params["optimizer.lr"].startswith("tag(log, interval(")
    assert sweeper.params["optimizer.weight_decay"].startswith("tag(log, interval(")
    assert sweeper.params["data.batch_size"].startswith("choice(")
    validate_config(make_cfg([f"hparams_search={preset}", "trainer.device=cpu"]))


def test_lenet_preset_starts_from_the_recipe_but_not_on_the_test_set(make_cfg):
    cfg = make_cfg(["hparams_search=d2l_lenet"])
    recipe = (cfg.model.name, cfg.data.name, cfg.optimizer.lr, cfg.data.batch_size)
    assert recipe == ("lenet", "fashion_mnist", 0.9, 256)
    assert cfg.data.val_split == 6000  # experiment=d2l_lenet alone validates on the test set (val_split=0)


# --- SLURM -----------------------------------------------------------------------------------------------------

def test_slurm_launcher_composes_with_the_documented_values():
    launcher = OmegaConf.to_container(hydra_node("hydra/launcher=slurm").launcher)
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert {key: launcher[key] for key in ("partition", "timeout_min", "nodes", "tasks_per_node", "gpus_per_node",
                                           "cpus_per_task", "mem_gb", "array_parallelism", "additional_parameters")} \
        == {"partition": None, "timeout_min": 60, "nodes": 1, "tasks_per_node": 1, "gpus_per_node": 1,
            "cpus_per_task": 4, "mem_gb": 16, "array_parallelism": 16, "additional_parameters": {}}
    assert launcher["submitit_folder"] == "${hydra.sweep.dir}/.submitit/%j"


def test_cfg_hydra_shows_the_slurm_settings_without_a_cluster(cli_main):
    result = cli_main("--cfg", "hydra", "-p", "hydra.launcher", "hydra/launcher=slurm", "hydra.launcher.partition=gpu")
    assert result.returncode == 0, result.stderr
    assert "partition: gpu" in result.stdout and "SlurmLauncher" in result.stdout


# --- cores per job ---------------------------------------------------------------------------------------------

@pytest.fixture
def parallel_jobs_of(monkeypatch):
    """parallel_jobs_of(*overrides): the parallel jobs of a job composed with `overrides` (a sweep's unless `mode`
    says otherwise), as `hydra_job.read_job` reads them, on 8 cores."""
    monkeypatch.setattr(sweeps, "usable_cores", lambda: 8)
    monkeypatch.setattr("joblib.cpu_count", lambda: 8)

    def _parallel(*overrides: str, mode: RunMode = RunMode.MULTIRUN) -> int:
        hydra_cfg = hydra_node(*overrides)
        return sweeps.parallel_jobs(mode == RunMode.MULTIRUN, OmegaConf.to_container(hydra_cfg.launcher, resolve=True),
                                    OmegaConf.to_container(hydra_cfg.sweeper, resolve=True))

    return _parallel


def test_one_job_at_a_time_outside_a_joblib_sweep(parallel_jobs_of):
    assert sweeps.parallel_jobs(False, {}, {}) == 1 and sweeps.threads_per_process() == 8
    assert parallel_jobs_of() == 1
    assert parallel_jobs_of("hydra/launcher=slurm") == 1  # every SLURM job has an allocation of its own
    assert parallel_jobs_of("hydra/launcher=joblib", "hydra.launcher.n_jobs=4", mode=RunMode.RUN) == 1  # a single run


@pytest.mark.parametrize(("n_jobs", "parallel", "threads", "threads_with_2_processes"), [
    (2, 2, 4, 2), (3, 3, 2, 1), (-1, 8, 1, 1), (-2, 7, 1, 1), (-20, 1, 8, 4), (16, 16, 1, 1)])
def test_joblib_jobs_split_the_cores(parallel_jobs_of, n_jobs, parallel, threads, threads_with_2_processes):
    assert parallel_jobs_of("hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}") == parallel
    assert sweeps.threads_per_process(parallel) == threads
    assert sweeps.threads_per_process(parallel, processes_per_job=2) == threads_with_2_processes


def test_an_optuna_batch_smaller_than_n_jobs_leaves_the_cores_to_fewer_jobs(parallel_jobs_of):
    parallel = parallel_jobs_of("hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "hparams_search=optuna",
                                "hydra.sweeper.n_jobs=2")
    assert parallel == 2 and sweeps.threads_per_process(parallel) == 4


def test_usable_cores_is_this_process_affinity():
    assert sweeps.usable_cores() == len(os.sched_getaffinity(0))


# --- the command-line check --------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer.lr=0.01,0.1"],
    ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "seed=0,1"],
    ["hparams_search=optuna", "hydra.sweeper.n_trials=5"],
    ["hparams_search=d2l_lenet", "optimizer.lr=tag(log, interval(0.1, 1.0))"],
])
def test_plugin_choices_pass_the_command_line_check(argv):
    assert override_problem(argv) is None


@pytest.mark.parametrize(("argv", "fragments"), [
    (["hparams_search=nope"], ["hparams_search=nope is not an option of 'hparams_search'", "optuna"]),
    (["-m", "hydra/launcher=jobib"], ["hydra/launcher=jobib is not an option", "did you mean hydra/launcher=joblib"]),
    (["-m", "hydra/launcher=slurm", "--cfg", "hydra"], ["--multirun and --cfg cannot be combined"]),
])
def test_bad_plugin_choices_are_one_line(argv, fragments):
    problem = override_problem(argv)
    assert problem is not None and "\n" not in problem
    assert all(fragment in problem for fragment in fragments), problem


@pytest.mark.parametrize(("override", "package", "extra"), [
    ("hydra/launcher=joblib", "hydra-joblib-launcher", "joblib"),
    ("hydra/launcher=slurm", "hydra-submitit-launcher", "slurm"),
    ("hparams_search=optuna", "hydra-optuna-sweeper", "optuna"),
])
def test_missing_plugin_is_a_one_line_error_naming_the_extra(monkeypatch, capsys, override, package, extra):
    monkeypatch.setattr(sweeps, "plugin_installed", lambda module: False)
    code = run_hydra_app(lambda: pytest.fail("Hydra started despite the missing plugin"), ["-m", override, "seed=0,1"])
    assert code == 2
    err = capsys.readouterr().err
    assert err == f'error: {override} needs the {package} plugin: pip install "cnnbench[{extra}]"\n'
