"""`python -m cnnbench`: the Hydra task `main` over `run(cfg)`, which validates the config, plans and claims the run
directory, builds the model, data and setup, trains, tests the best checkpoint and writes summary.json."""

from __future__ import annotations

import dataclasses
import logging
import time
from contextlib import contextmanager
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from . import CONF_DIR
from .config import build_model, data_settings, prepare_config, validate_config
from .config.diff import config_shown
from .data import DataBundle, build_data
from .data.transforms import batch_mix
from .engine import metrics as m
from .engine.checkpoint import restore
from .engine.console import print_config, print_header, print_result, run_console
from .engine.dashboard import HParam
from .engine.fit import FitSettings, final_test, fit, steps_per_epoch
from .engine.output import RunLogger
from .engine.setup import SetupSettings, TrainSetup, build_setup
from .engine.writers import RunWriters
from .errors import as_cnnbench_error, status_of
from .hydra_job import read_job
from .launch import Launch, claim_launch, continued, failed
from .runtime import distributed, runlog
from .runtime.devices import resolve_device
from .runtime.files import save_json
from .runtime.job import IN_CODE, Job
from .runtime.job_labels import hparams
from .runtime.overrides import flatten
from .runtime.rundir import SUMMARY_FILE, config_fingerprint, drop_if_unused, owner, plan_run_dir
from .runtime.signals import abort_on_signals, stop_on_signals
from .runtime.sweep_job import begin_job, end_job, skipped
from .runtime.sweeps import FAILED_JOB_VALUE, threads_for

log = logging.getLogger(__name__)


def run(cfg: DictConfig, job: Job = IN_CODE) -> dict:
    """Train `cfg.model` on `cfg.data`, test the best checkpoint, and return the run's summary. `job`: how the run was
    launched (its command line, its sweep), read from Hydra by `main`; a config built in code needs none.

    The run directory always ends with a summary.json whose status says how the run ended. With
    `trainer.devices` > 1 (or under torchrun) this is rank 0 of a data-parallel run, the only one that writes.
    """
    started = time.perf_counter()
    validate_config(cfg)
    cfg = prepare_config(cfg)  # an image folder's facts read in, the model checked against its input
    launch = None if distributed.launched_by_torchrun() else prepare(cfg, job)  # torchrun: rank 0 plans, below
    if launch is not None and launch.plan.finished is not None:
        return already_finished(launch, job, run_console(True))
    run_cfg = OmegaConf.create(launch.config) if launch is not None else cfg
    device = resolve_device(run_cfg.trainer.device)
    threads = threads_for(device.type == "cpu", run_cfg.trainer.devices, job.parallel_jobs)
    if threads is not None and threads != torch.get_num_threads():
        log.info("%d CPU threads per process", threads)
        torch.set_num_threads(threads)
    held = None
    try:
        if launch is not None:  # the folder is this launch's before the ranks it spawns start
            held, launch = claim_launch(launch, job, replan=lambda: prepare(cfg, job))
        spawned_with = (run_plain, OmegaConf.to_container(run_cfg), threads)
        with distributed.process_group(run_cfg.trainer.devices, device, spawned_with) as ranks:
            if ranks.is_main and launch is None:  # rank 0 under torchrun
                launch = prepare(cfg, job)
                if launch.plan.finished is None:
                    held, launch = claim_launch(launch, job, replan=lambda: prepare(cfg, job))
            launch = distributed.broadcast_from_main(launch)
            if launch.plan.finished is not None:
                return already_finished(launch, job, run_console(ranks.is_main))
            run_dir = Path(distributed.broadcast_from_main(str(held.run_dir) if held else None))
            return _run_rank(launch, job, run_dir, ranks, distributed.rank_device(device, ranks.local_rank), started)
    finally:
        if held is not None:
            held.release()


def run_plain(config: dict) -> dict:
    """`run` of a config given as plain containers: what a rank spawned by `trainer.devices` runs."""
    return run(OmegaConf.create(config))


def prepare(cfg: DictConfig, job: Job) -> Launch:
    """What this launch will run and where: a fresh run, or the saved run `trainer.resume` names (its config,
    with the changes a resume may make), or nothing, when that run already finished."""
    config = OmegaConf.to_container(cfg, resolve=True)
    fingerprint = config_fingerprint(config)
    plan = plan_run_dir(Path(cfg.output_dir), cfg.trainer.resume, fingerprint)
    if plan.checkpoint is None:
        return Launch(config, plan, fingerprint, cfg.trainer.epochs, hydra_dir=str(cfg.output_dir))
    continuation = continued(cfg, plan.checkpoint, job.named_keys())
    resumed = {**continuation.config, "output_dir": str(plan.run_dir)}
    resumed_cfg = OmegaConf.create(resumed)
    validate_config(resumed_cfg)
    prepare_config(resumed_cfg)
    return Launch(resumed, plan, config_fingerprint(resumed), continuation.schedule_epochs,
                  continuation.notices, hydra_dir=str(cfg.output_dir))


def already_finished(launch: Launch, job: Job, console) -> dict:
    """The summary of the finished run a resume named, said in one line; the folder Hydra made for this launch
    goes if it is empty. Settings the command gave are named as not applied: nothing is trained."""
    finished = m.current_keys(launch.plan.finished)
    given = flatten(launch.config)
    ignored = [] if launch.config["trainer"]["resume"] == "auto" else \
        [f"{key}={given[key]}" for key in job.named_keys() or [] if key in given]
    note = f"; {', '.join(ignored)} not applied: start a new run to train with them" if ignored else ""
    console.print(f"the run in {launch.plan.run_dir} already finished ({finished['status']}, {m.TEST_ACC} "
                  f"{finished.get(m.TEST_ACC)}); nothing to do (a finished run is left as it is){note}",
                  highlight=False)
    drop_if_unused(Path(launch.hydra_dir or launch.plan.run_dir), launch.plan.run_dir)
    return finished


def _run_rank(launch: Launch, job: Job, run_dir: Path, ranks: distributed.Ranks, device: torch.device,
              started: float) -> dict:
    console = run_console(ranks.is_main)
    config = {**launch.config, "output_dir": str(run_dir)}  # plain values, and the same as a DictConfig
    cfg = OmegaConf.create(config)
    if ranks.is_main:
        if job.in_sweep:  # a job's screen starts with which job it is
            console.print(job.sweep_job_line(), style="bold", highlight=False)
        for notice in launch.notices:
            console.print(notice, highlight=False)
        shown = config_shown(config, OmegaConf.select(cfg, "console.config", default="diff"), job.choices)
        print_config(console, OmegaConf.to_yaml(cfg), shown)
    with deterministic_algorithms(cfg.trainer.deterministic):
        return _train_and_test(cfg, config, launch, job, run_dir, ranks, device, console, started)


@contextmanager
def deterministic_algorithms(enabled: bool):
    before = torch.are_deterministic_algorithms_enabled()
    if enabled == before:  # the call imports torch._inductor's config: seconds of start-up for nothing
        yield
        return
    torch.use_deterministic_algorithms(enabled)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def settings_from(cls, trainer_cfg: DictConfig, **facts):
    """A frozen settings dataclass of the engine, filled from `trainer.*` (its field names) plus `facts`."""
    names = {field.name for field in dataclasses.fields(cls)} - facts.keys()
    return cls(**{name: trainer_cfg[name] for name in names if name in trainer_cfg}, **facts)


def build(cfg: DictConfig, ranks: distributed.Ranks, device: torch.device,
          schedule_epochs: int) -> tuple[TrainSetup, DataBundle]:
    """The model (seeded), the data and the training setup a config describes."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    data = build_data(data_settings(cfg, drop_last=cfg.trainer.compile is not False),  # one shape: compiled once
                      device, cfg.seed, ranks)
    settings = settings_from(SetupSettings, cfg.trainer)
    mix = batch_mix(cfg.data.get("mixup_alpha", 0), cfg.data.get("cutmix_alpha", 0), cfg.data.num_classes)
    setup = build_setup(model, instantiate(cfg.optimizer), instantiate(cfg.scheduler), settings, device, ranks,
                        steps_per_epoch(data.train, cfg.trainer.max_steps_per_epoch), schedule_epochs, mix=mix)
    return setup, data


def _train_and_test(cfg: DictConfig, config: dict, launch: Launch, job: Job, run_dir: Path, ranks: distributed.Ranks,
                    device: torch.device, console, started: float) -> dict:
    summary = {"status": "running", "model": cfg.model.name, "dataset": cfg.data.name, "seed": cfg.seed,
               "overrides": list(job.overrides), "fingerprint": launch.fingerprint, "owner": owner(),
               "reported": reported_for(config)}

    def save_summary(**changes) -> None:
        summary.update(changes, updated_at=time.strftime("%Y-%m-%d %H:%M:%S"))
        if ranks.is_main:
            save_json(run_dir / SUMMARY_FILE, summary, in_place_when_full=summary["status"] != "running")

    logger = RunLogger(console)  # the console only, until the run's writers open
    try:
        setup, data = build(cfg, ranks, device, launch.schedule_epochs)
        state = restore(launch.plan.checkpoint, setup, data.train, cfg.trainer.patience, cfg.model.name) \
            if launch.plan.checkpoint else None
        summary.update(params=sum(p.numel() for p in setup.module.parameters()), device=str(device),
                       world_size=ranks.world_size, input_shape=list(data.input_shape),
                       num_train=data.train.num_examples, num_val=data.val.num_examples,
                       num_test=data.test.num_examples, val_is_test=data.val_is_test, data_from=data.origin,
                       epochs_done=state.epoch if state else 0)
        save_summary()
        if ranks.is_main:
            print_header(console, summary, run_dir, resuming_at(state))
            logger = RunLogger(console, RunWriters(run_dir, resume_epoch=state.epoch if state else None,
                                                   rows=state.epoch_metrics if state else None))
            start_dashboard(logger, cfg, config, job, setup, data, state.epoch if state else 0)
        settings = settings_from(FitSettings, cfg.trainer, checkpoints=run_dir / "checkpoints", config=config,
                                 schedule_epochs=launch.schedule_epochs, started=started)
        with stop_on_signals(job.in_sweep, quiet=job.parallel_jobs > 1) as stop:
            result = fit(setup, data, settings, logger, state, stop,
                         on_epoch=lambda epoch, metrics: save_summary(epochs_done=epoch))
        distributed.barrier()  # best.pt is complete before every rank reads it
        test = final_test(setup, data, settings.checkpoints, logger, result["epochs_run"], run_name=str(run_dir.name),
                          per_class_table=not job.in_sweep)
        summary.pop("owner")
        save_summary(**result, **test, status="completed", **{m.WALL_S: round(time.perf_counter() - started, 3)})
        logger.end_dashboard(summary, "completed", result["epochs_run"])
    except BaseException as err:
        error = as_cnnbench_error(err)
        try:
            save_summary(status=status_of(err), error=str(error).splitlines()[0] if str(error) else type(err).__name__,
                         **{m.WALL_S: round(time.perf_counter() - started, 3)})
        except OSError:  # the disk or the permissions are what failed: the error above says so
            log.debug("summary.json could not be updated", exc_info=True)
        try:
            logger.end_dashboard(summary, summary["status"], summary.get("epochs_done") or 0)
        except OSError:
            log.debug("TensorBoard's HParams entry could not be updated", exc_info=True)
        raise
    finally:
        logger.close()
    print_result(console, summary, run_dir, compiled=cfg.trainer.compile is not False, short=job.in_sweep)
    log.info("summary: %s", summary)
    return summary


def start_dashboard(logger: RunLogger, cfg: DictConfig, config: dict, job: Job, setup: TrainSetup,
                    data: DataBundle, step: int) -> None:
    """TensorBoard's view of the run from its start: layout, config and overrides as text, the HParams entry (with
    the same columns in every job of a sweep, the swept ones first), and the model graph if trainer.log_graph."""
    rows = hparams(config, list(job.overrides), job.choices, job.swept)
    logger.start_dashboard(OmegaConf.to_yaml(cfg), list(job.overrides), [HParam(*row) for row in rows], step)
    if cfg.trainer.get("log_graph"):
        logger.log_graph(setup.module, torch.zeros(2, *data.input_shape, device=data.train.device))


def reported_for(config: dict) -> dict | None:
    """What the run's seed reported for this model (an experiment's `reported`), to compare with; None if nothing."""
    reported = config.get("reported") or {}
    value = (reported.get("by_model") or {}).get(config["model"]["name"], reported.get("value"))
    if value is None:
        return None
    return {"metric": reported.get("metric", m.TEST_ACC), "value": value, "source": reported.get("source")}


def resuming_at(state) -> str | None:
    if state is None:
        return None
    step = f", step {state.cursor.steps_done + 1}" if state.cursor else ""
    return f"resuming at epoch {state.epoch + 1}{step} (best {m.VAL_ACC} so far {state.stopper.best:.4f})"


@hydra.main(config_path=CONF_DIR, config_name="config", version_base=None)
def main(cfg: DictConfig) -> float:
    """Hydra task function; returns the value a sweeper maximises (the best val/acc), -inf for a failed job."""
    try:
        return _main(cfg, read_job())
    finally:
        runlog.detach()


def _main(cfg: DictConfig, launched: Job) -> float:
    job = begin_job(Path(cfg.output_dir), launched)
    if job is not None and job.action != "run":
        return skipped(job)
    if job is not None and job.resumes and cfg.trainer.resume in (None, ""):
        cfg.trainer.resume = str(job.sweep_dir / job.folder)  # its own folder: continued where it stopped
    with abort_on_signals(enabled=job is None):  # a sweep's launch stops its jobs after their step instead
        try:
            summary = run(cfg, launched)
        except BaseException as raised:  # every fault ends in one line; its traceback goes to run.log
            return failed(cfg, launched, job, raised)
    if job is not None:
        end_job(job, summary.get("status", "completed"), fingerprint=summary.get("fingerprint"),
                **{m.VAL_ACC_BEST: summary.get(m.VAL_ACC_BEST), m.TEST_ACC: summary.get(m.TEST_ACC)})
    return summary.get(m.VAL_ACC_BEST, FAILED_JOB_VALUE)
