"""`python -m cnnbench`: a thin Hydra entrypoint over `run(cfg)`, which trains, tests and reports."""

from __future__ import annotations

import inspect
import logging
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import hydra
import torch
import torch.nn as nn
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.syntax import Syntax
from torch.nn.parallel import DistributedDataParallel

from . import CONF_DIR, distributed
from .checkpoint import load_checkpoint, save_json
from .config import resolve_device, validate_config
from .data import build_data
from .engine import Diverged, StopFlag, TrainSetup, evaluate_with_confusion
from .errors import CnnbenchError, ConfigError, announce
from .evaluate import confusion_figure, per_class_accuracy, print_per_class
from .fit import Interrupted, fit, restore
from .launchers import parallel_jobs, threads_per_process
from .logger import NullLogger, RunLogger, silent_console
from .models import build_model
from .resume import SUMMARY_FILE, config_fingerprint, move_run_log, plan_run_dir

log = logging.getLogger(__name__)

FAILED_JOB_VALUE = float("-inf")


def run(cfg: DictConfig) -> dict:
    """Train `cfg.model` on `cfg.data`, test the best checkpoint, and return the run's summary.

    The run directory always ends with a summary.json whose status says how the run ended. With
    `trainer.devices` > 1 (or under torchrun) this is rank 0 of a data-parallel run, the only one that writes.
    """
    started = time.perf_counter()
    validate_config(cfg)
    device = resolve_device(cfg.trainer.device)
    devices = int(cfg.trainer.get("devices", 1))
    _check_sync_bn(cfg, device, devices)
    threads = threads_for(device, devices)
    if threads is not None and threads != torch.get_num_threads():
        log.info("%d CPU threads per process (%d parallel sweep job(s))", threads, parallel_jobs())
        torch.set_num_threads(threads)
    spawned_with = (run, OmegaConf.to_container(cfg, resolve=True), threads)
    with distributed.process_group(devices, device, spawned_with) as ranks:
        return _run_rank(cfg, ranks, distributed.rank_device(device, ranks.local_rank), started)


def _run_rank(cfg: DictConfig, ranks: distributed.Ranks, device: torch.device, started: float) -> dict:
    console = Console(soft_wrap=True) if ranks.is_main else silent_console()
    fingerprint = config_fingerprint(cfg)
    plan = distributed.broadcast_from_main(plan_run_dir(cfg, fingerprint) if ranks.is_main else None)
    if plan.run_dir != Path(cfg.output_dir):
        if ranks.is_main:
            move_run_log(Path(cfg.output_dir), plan.run_dir)
        with open_dict(cfg):
            cfg.output_dir = str(plan.run_dir)
    if plan.finished is not None:
        console.print(f"an identical run already finished in {plan.run_dir} ({plan.finished['status']}, "
                      f"test_acc {plan.finished.get('test_acc')}); nothing to do", highlight=False)
        return plan.finished
    if ranks.is_main:
        _print_config(console, cfg)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(bool(cfg.trainer.get("deterministic")))
    try:
        return _train_and_test(cfg, console, plan, fingerprint, started, ranks, device)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)


def _check_sync_bn(cfg: DictConfig, device: torch.device, devices: int) -> None:
    parallel = devices > 1 or distributed.launched_by_torchrun()
    if cfg.trainer.get("sync_bn") and parallel and device.type != "cuda":
        raise ConfigError("trainer.sync_bn=true is not allowed on the CPU: torch's SyncBatchNorm runs on CUDA only "
                          "(with false each process normalises with the statistics of its own part of the batch)")


def threads_for(device: torch.device, devices: int) -> int | None:
    """CPU threads per process when processes or parallel sweep jobs share this machine; None = torch's default.

    The launching process decides (it knows the sweep); the ranks it spawns get the number in the environment.
    """
    if distributed.THREADS_VARIABLE in os.environ:
        return int(os.environ[distributed.THREADS_VARIABLE])
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", devices)) if device.type == "cpu" else 1
    if processes * parallel_jobs() == 1:
        return None
    return threads_per_process(processes)


def _train_and_test(cfg: DictConfig, console: Console, plan, fingerprint: str, started: float,
                    ranks: distributed.Ranks, device: torch.device) -> dict:
    run_dir = plan.run_dir
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, cfg.data).to(device)
    if cfg.trainer.get("channels_last", False):
        model = model.to(memory_format=torch.channels_last)  # convolutions then produce NHWC activations
    data = build_data(cfg.data, device, cfg.seed, ranks)
    model = compiled(data_parallel(model, device, ranks, bool(cfg.trainer.get("sync_bn", False))),
                     cfg.trainer.get("compile", False))
    optimizer = make_optimizer(cfg, model, device)
    steps_per_epoch = min(len(data.train), cfg.trainer.max_steps_per_epoch or len(data.train))
    scheduler = hydra.utils.instantiate(cfg.scheduler)(
        optimizer, total_steps=steps_per_epoch * cfg.trainer.epochs, steps_per_epoch=steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.trainer.label_smoothing)
    setup = TrainSetup(model, optimizer, loss_fn, scheduler, cfg.trainer.grad_clip,
                       amp=use_amp(cfg.trainer.get("amp", "auto"), device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest kernels once
    state = restore(plan.checkpoint, setup, data, cfg) if plan.checkpoint else None
    summary = {
        "model": cfg.model.name, "dataset": cfg.data.name, "params": sum(p.numel() for p in model.parameters()),
        "device": str(device), "world_size": ranks.world_size, "status": "running", "seed": cfg.seed,
        "input_shape": list(data.input_shape), "num_train": data.train.num_examples,
        "num_val": data.val.num_examples, "num_test": data.test.num_examples, "val_is_test": data.val_is_test,
        "overrides": _overrides(), "fingerprint": fingerprint,
    }
    save_summary = (lambda: save_json(run_dir / SUMMARY_FILE, summary)) if ranks.is_main else (lambda: None)
    save_summary()
    if ranks.is_main:
        _print_header(console, cfg, summary, run_dir, state)
    logger = RunLogger(run_dir, console, resume_epoch=state.epoch if state else None) if ranks.is_main \
        else NullLogger(console)
    try:
        with stop_on_signals() as stop:
            result = fit(setup, data, cfg, logger, state, stop)
        distributed.barrier()  # best.pt is complete before every rank reads it
        test, per_class = _test_best(setup, data, run_dir, device, logger, result["epochs_run"])
        logger.log_hparams(hparams(cfg), {"best_val_acc": result["best_val_acc"], "test_acc": test["test/acc"]})
    except BaseException as err:
        summary.update(status=_status_of(err), error=str(err).splitlines()[0] if str(err) else type(err).__name__,
                       wall_s=round(time.perf_counter() - started, 3))
        save_summary()
        raise
    finally:
        logger.close()
    summary.update(result, test_acc=test["test/acc"], test_loss=test["test/loss"], status="completed",
                   wall_s=round(time.perf_counter() - started, 3), per_class_acc=per_class)
    if cfg.trainer.get("compile", False) is not False:
        console.print(f"torch.compile: the first training step took {summary['first_step_s']:.1f}s (compilation); "
                      f"later epochs ran at {summary['train_examples_per_s']:,.0f} img/s", highlight=False)
    save_summary()
    console.print(f"test/acc {summary['test_acc']:.4f} (best epoch {summary['best_epoch']}, "
                  f"val/acc {summary['best_val_acc']:.4f}) in {summary['wall_s']:.1f}s; "
                  f"results in {run_dir}", style="bold", highlight=False)
    log.info("summary: %s", summary)
    return summary


def compiled(model: nn.Module, setting) -> nn.Module:
    """`trainer.compile`: false, true (torch.compile's default mode), or a mode such as reduce-overhead."""
    if setting is False:
        return model
    return torch.compile(model, mode=None if setting is True else setting)


def data_parallel(model: nn.Module, device: torch.device, ranks: distributed.Ranks, sync_bn: bool) -> nn.Module:
    """The model wrapped in DistributedDataParallel when there are several ranks (gradients all-reduced)."""
    if ranks.world_size == 1:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _test_best(setup: TrainSetup, data, run_dir: Path, device: torch.device, logger: RunLogger, step: int):
    """Reload best.pt and evaluate it on the test set: metrics, per-class accuracy, confusion image."""
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt", map_location=device)
    setup.module.load_state_dict(best["model"])
    with setup.autocast():
        test, confusion = evaluate_with_confusion(setup.module, data.test, setup.loss_fn, len(data.classes),
                                                  prefix="test")
    per_class = per_class_accuracy(confusion, data.classes)
    logger.log_test(test, step=step)
    if distributed.is_main():
        logger.log_figure("test/confusion_matrix", confusion_figure(confusion, data.classes), step)
    print_per_class(logger.console, per_class, confusion, title="per-class test accuracy (best checkpoint)")
    return test, per_class


def use_amp(setting, device: torch.device) -> bool:
    """`trainer.amp`: auto = bf16 autocast on CUDA only; true/false force it (bf16 autocast works on CPUs too)."""
    return device.type == "cuda" if setting == "auto" else bool(setting)


def make_optimizer(cfg: DictConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The configured optimizer; on CUDA its fused implementation (one kernel for the whole update)."""
    partial = hydra.utils.instantiate(cfg.optimizer)
    if device.type == "cuda" and "fused" in inspect.signature(partial.func).parameters:
        return partial(model.parameters(), fused=True)
    return partial(model.parameters())


def _status_of(err: BaseException) -> str:
    if isinstance(err, Diverged):
        return "diverged"
    if isinstance(err, Interrupted | KeyboardInterrupt):
        return "interrupted"
    return "failed"


@contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM ask the loop to stop after the current step; a second SIGINT stops at once."""
    stop = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum, frame):
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.signal_name = signal.Signals(signum).name
        print(f"{stop.signal_name} received: finishing the current step and saving last.pt "
              "(Ctrl-C again to abort at once)", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_header(console: Console, cfg: DictConfig, summary: dict, run_dir: Path, state) -> None:
    val = f"{summary['num_val']:,} val{' (= test)' if summary['val_is_test'] else ''}"
    console.print(
        f"[bold]{cfg.model.name}[/] on [bold]{cfg.data.name}[/]: {summary['params']:,} parameters, "
        f"{summary['num_train']:,} train / {val} / {summary['num_test']:,} test images of "
        f"{'x'.join(map(str, summary['input_shape']))}, device {summary['device']}, run dir {run_dir}",
        highlight=False)
    if state is not None:
        where = f"epoch {state.epoch + 1}, step {state.cursor.steps_done + 1}" if state.cursor else \
            f"epoch {state.epoch + 1}"
        console.print(f"resuming at {where} (best val/acc so far {state.stopper.best:.4f})", highlight=False)
    job = _sweep_job()
    if job:
        console.print(job, style="bold", highlight=False)


def _print_config(console: Console, cfg: DictConfig) -> None:
    text = OmegaConf.to_yaml(cfg, resolve=True)
    log.info("config:\n%s", text)
    if console.is_terminal:
        console.print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    else:
        console.print(text, highlight=False, markup=False, end="")


def _overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _sweep_job() -> str | None:
    """`sweep job #3: optimizer.lr=0.1 data.batch_size=128` inside a multirun, else None."""
    if not HydraConfig.initialized() or str(HydraConfig.get().mode) != "RunMode.MULTIRUN":
        return None
    hydra_cfg = HydraConfig.get()
    total = _sweep_size(Path(hydra_cfg.sweep.dir) / "multirun.yaml")
    of_total = f" of {total}" if total else ""
    return f"sweep job {hydra_cfg.job.num + 1}{of_total} (#{hydra_cfg.job.num}): {' '.join(_overrides())}"


def _sweep_size(multirun_yaml: Path) -> int | None:
    """Number of jobs of a basic-sweeper sweep, from the command line Hydra saved in multirun.yaml."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        saved = OmegaConf.load(multirun_yaml).hydra
        params = saved.sweeper.get("params") or {}
        lines = [f"{key}={value}" for key, value in params.items()] + list(saved.overrides.task)
        sizes = {o.get_key_element(): len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1
                 for o in OverridesParser.create().parse_overrides(lines)}  # the command line wins per key
        return int(math.prod(sizes.values()))
    except Exception:  # another sweeper, or an interval sweep: the size is not known up front
        log.debug("sweep size unknown", exc_info=True)
        return None


def hparams(cfg: DictConfig) -> dict[str, float | int | str | bool]:
    """The run's settings for TensorBoard's HParams tab: the main knobs plus every command-line override."""
    values = {
        "model": cfg.model.name, "data": cfg.data.name, "optimizer": cfg.optimizer._target_.rsplit(".", 1)[-1],
        "optimizer.lr": cfg.optimizer.lr, "data.batch_size": cfg.data.batch_size, "trainer.epochs": cfg.trainer.epochs,
        "seed": cfg.seed,
    }
    for override in _overrides():
        key, _, _ = override.lstrip("+~").partition("=")
        value = OmegaConf.select(cfg, key, default=None)
        if key and not key.startswith("hydra") and not isinstance(value, DictConfig):
            values[key] = value if isinstance(value, int | float | str | bool) else str(value)
    return values


@hydra.main(config_path=CONF_DIR, config_name="config", version_base=None)
def main(cfg: DictConfig) -> float:
    """Hydra task function; returns the value a sweeper maximises (best validation accuracy).

    A job that fails returns -inf: a maximising sweeper ranks it last and goes on (Optuna refuses NaN).
    """
    try:
        return run(cfg).get("best_val_acc", FAILED_JOB_VALUE)
    except CnnbenchError as err:
        exit_code = announce(err, log)
        _record_failure(Path(cfg.output_dir), err)
        if _sweep_job() and not isinstance(err, Interrupted):
            return FAILED_JOB_VALUE  # the other jobs go on; the sweep's exit code and the report show this one
        sys.exit(exit_code)


def _record_failure(run_dir: Path, err: CnnbenchError) -> None:
    """A run that stopped before writing its summary (bad config, missing data) still leaves one."""
    if not (run_dir / SUMMARY_FILE).exists() and run_dir.is_dir():
        save_json(run_dir / SUMMARY_FILE, {"status": _status_of(err), "error": str(err), "overrides": _overrides()})


if __name__ == "__main__":
    from .cli import main as cli_main

    cli_main()
