"""`python -m cnnbench`: the Hydra task `main` over `run(cfg)`, which validates the config, plans the run
directory, builds the model, data and setup, trains, tests the best checkpoint and writes summary.json."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from . import CONF_DIR
from .config import validate_config
from .data import DataBundle, build_data, input_size
from .engine import metrics as m
from .engine.checkpoint import restore
from .engine.fit import FitSettings, final_test, fit, steps_per_epoch
from .engine.output import NullLogger, RunLogger, print_config, print_header, print_result, run_console
from .engine.setup import SetupSettings, TrainSetup, build_setup
from .errors import CnnbenchError, Interrupted, announce, status_of
from .models import build_model
from .runtime import distributed
from .runtime.devices import resolve_device
from .runtime.files import save_json
from .runtime.rundir import SUMMARY_FILE, ResumePlan, config_fingerprint, move_run_log, plan_run_dir
from .runtime.signals import stop_on_signals
from .runtime.sweeps import FAILED_JOB_VALUE, hparams, in_sweep, job_overrides, sweep_job_line, threads_for

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Train `cfg.model` on `cfg.data`, test the best checkpoint, and return the run's summary.

    The run directory always ends with a summary.json whose status says how the run ended. With
    `trainer.devices` > 1 (or under torchrun) this is rank 0 of a data-parallel run, the only one that writes.
    """
    started = time.perf_counter()
    validate_config(cfg)
    device = resolve_device(cfg.trainer.device)
    threads = threads_for(device.type == "cpu", cfg.trainer.devices)
    if threads is not None and threads != torch.get_num_threads():
        log.info("%d CPU threads per process", threads)
        torch.set_num_threads(threads)
    spawned_with = (run_plain, OmegaConf.to_container(cfg, resolve=True), threads)
    with distributed.process_group(cfg.trainer.devices, device, spawned_with) as ranks:
        return _run_rank(cfg, ranks, distributed.rank_device(device, ranks.local_rank), started)


def run_plain(config: dict) -> dict:
    """`run` of a config given as plain containers: what a rank spawned by `trainer.devices` runs."""
    return run(OmegaConf.create(config))


def _run_rank(cfg: DictConfig, ranks: distributed.Ranks, device: torch.device, started: float) -> dict:
    console = run_console(ranks.is_main)
    fingerprint = config_fingerprint(OmegaConf.to_container(cfg, resolve=True))
    plan = distributed.broadcast_from_main(
        plan_run_dir(Path(cfg.output_dir), cfg.trainer.resume, fingerprint) if ranks.is_main else None)
    if plan.run_dir != Path(cfg.output_dir):
        if ranks.is_main:
            move_run_log(Path(cfg.output_dir), plan.run_dir)
        with open_dict(cfg):
            cfg.output_dir = str(plan.run_dir)
    if plan.finished is not None:
        finished = m.current_keys(plan.finished)
        console.print(f"an identical run already finished in {plan.run_dir} ({finished['status']}, "
                      f"{m.TEST_ACC} {finished.get(m.TEST_ACC)}); nothing to do", highlight=False)
        return finished
    if ranks.is_main:
        print_config(console, OmegaConf.to_yaml(cfg, resolve=True))
    with deterministic_algorithms(cfg.trainer.deterministic):
        return _train_and_test(cfg, plan, fingerprint, ranks, device, console, started)


@contextmanager
def deterministic_algorithms(enabled: bool):
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def settings_from(cls, trainer_cfg: DictConfig, **facts):
    """A frozen settings dataclass of the engine, filled from `trainer.*` (its field names) plus `facts`."""
    names = {field.name for field in dataclasses.fields(cls)} - facts.keys()
    return cls(**{name: trainer_cfg[name] for name in names if name in trainer_cfg}, **facts)


def build(cfg: DictConfig, ranks: distributed.Ranks, device: torch.device) -> tuple[TrainSetup, DataBundle]:
    """The model (seeded), the data and the training setup a config describes."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, num_classes=cfg.data.num_classes, in_chans=cfg.data.in_chans,
                        input_size=input_size(cfg.data))
    data = build_data(cfg.data, device, cfg.seed, ranks)
    setup = build_setup(model, instantiate(cfg.optimizer), instantiate(cfg.scheduler),
                        settings_from(SetupSettings, cfg.trainer), device, ranks,
                        steps_per_epoch(data.train, cfg.trainer.max_steps_per_epoch), cfg.trainer.epochs)
    return setup, data


def _train_and_test(cfg: DictConfig, plan: ResumePlan, fingerprint: str, ranks: distributed.Ranks,
                    device: torch.device, console, started: float) -> dict:
    run_dir = plan.run_dir
    config = OmegaConf.to_container(cfg, resolve=True)
    setup, data = build(cfg, ranks, device)
    state = restore(plan.checkpoint, setup, data.train, cfg.trainer.patience, cfg.model.name) \
        if plan.checkpoint else None
    summary = {
        "model": cfg.model.name, "dataset": cfg.data.name, "params": sum(p.numel() for p in setup.module.parameters()),
        "device": str(device), "world_size": ranks.world_size, "status": "running", "seed": cfg.seed,
        "input_shape": list(data.input_shape), "num_train": data.train.num_examples,
        "num_val": data.val.num_examples, "num_test": data.test.num_examples, "val_is_test": data.val_is_test,
        "overrides": job_overrides(), "fingerprint": fingerprint,
    }

    def save_summary() -> None:
        if ranks.is_main:
            save_json(run_dir / SUMMARY_FILE, summary)

    save_summary()
    if ranks.is_main:
        resuming = None if state is None else (
            f"resuming at epoch {state.epoch + 1}" + (f", step {state.cursor.steps_done + 1}" if state.cursor else "")
            + f" (best {m.VAL_ACC} so far {state.stopper.best:.4f})")
        print_header(console, summary, run_dir, resuming, sweep_job_line())
    logger = RunLogger(run_dir, console, resume_epoch=state.epoch if state else None) if ranks.is_main \
        else NullLogger(console)
    settings = settings_from(FitSettings, cfg.trainer, checkpoints=run_dir / "checkpoints", config=config)
    try:
        with stop_on_signals() as stop:
            result = fit(setup, data, settings, logger, state, stop)
        distributed.barrier()  # best.pt is complete before every rank reads it
        test = final_test(setup, data, settings.checkpoints, logger, result["epochs_run"])
        logger.log_hparams(hparams(config, job_overrides()))
    except BaseException as err:
        summary.update(status=status_of(err), error=str(err).splitlines()[0] if str(err) else type(err).__name__)
        summary[m.WALL_S] = round(time.perf_counter() - started, 3)
        save_summary()
        raise
    finally:
        logger.close()
    summary.update(result, **test, status="completed")
    summary[m.WALL_S] = round(time.perf_counter() - started, 3)
    save_summary()
    print_result(console, summary, run_dir, compiled=cfg.trainer.compile is not False)
    log.info("summary: %s", summary)
    return summary


@hydra.main(config_path=CONF_DIR, config_name="config", version_base=None)
def main(cfg: DictConfig) -> float:
    """Hydra task function; returns the value a sweeper maximises (the best val/acc), -inf for a failed job."""
    try:
        return run(cfg).get(m.VAL_ACC_BEST, FAILED_JOB_VALUE)
    except CnnbenchError as err:
        exit_code = announce(err, log)
        _record_failure(Path(cfg.output_dir), err)
        if in_sweep() and not isinstance(err, Interrupted):
            return FAILED_JOB_VALUE  # the other jobs go on; the sweep's exit code and the report show this one
        sys.exit(exit_code)


def _record_failure(run_dir: Path, err: CnnbenchError) -> None:
    """A run that stopped before writing its summary (bad config, missing data) still leaves one."""
    if not (run_dir / SUMMARY_FILE).exists() and run_dir.is_dir():
        save_json(run_dir / SUMMARY_FILE, {"status": status_of(err), "error": str(err), "overrides": job_overrides()})
