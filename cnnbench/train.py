"""`python -m cnnbench`: a thin Hydra entrypoint over `run(cfg)`, which trains, tests and reports."""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

import hydra
import torch
import torch.nn as nn
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax

from . import CONF_DIR
from .checkpoint import load_checkpoint, save_json
from .config import resolve_device, validate_config
from .data import build_data
from .engine import evaluate_with_confusion, fit
from .errors import CnnbenchError, ConfigError
from .evaluate import confusion_figure, per_class_accuracy, print_per_class
from .logger import RunLogger
from .models import build_model

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


def run(cfg: DictConfig) -> dict:
    """Train `cfg.model` on `cfg.data`, test the best checkpoint, and return the run's summary."""
    started = time.perf_counter()
    validate_config(cfg)
    run_dir = Path(cfg.output_dir)
    _refuse_finished_run_dir(run_dir)
    console = Console(soft_wrap=True)
    _print_config(console, cfg)

    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.trainer.device)
    data = build_data(cfg.data, device, cfg.seed)
    model = build_model(cfg.model, cfg.data).to(device)
    params = sum(p.numel() for p in model.parameters())
    optimizer = hydra.utils.instantiate(cfg.optimizer)(model.parameters())
    steps_per_epoch = min(len(data.train), cfg.trainer.max_steps_per_epoch or len(data.train))
    scheduler = hydra.utils.instantiate(cfg.scheduler)(
        optimizer, total_steps=steps_per_epoch * cfg.trainer.epochs, steps_per_epoch=steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.trainer.label_smoothing)
    console.print(
        f"[bold]{cfg.model.name}[/] on [bold]{cfg.data.name}[/]: {params:,} parameters, "
        f"{data.train.num_examples:,} train / {data.val.num_examples:,} val"
        f"{' (= test)' if data.val_is_test else ''} / {data.test.num_examples:,} test images "
        f"of {'x'.join(map(str, data.input_shape))}, device {device}, run dir {run_dir}", highlight=False)

    job = _sweep_job()
    if job:
        console.print(job, style="bold", highlight=False)
    logger = RunLogger(run_dir, console)
    try:
        result = fit(model, data, optimizer, scheduler, loss_fn, cfg, logger)
        best = load_checkpoint(run_dir / "checkpoints" / "best.pt", map_location=device)
        model.load_state_dict(best["model"])
        test, confusion = evaluate_with_confusion(model, data.test, loss_fn, len(data.classes), prefix="test")
        per_class = per_class_accuracy(confusion, data.classes)
        logger.log_test(test, step=result["epochs_run"])
        logger.log_figure("test/confusion_matrix", confusion_figure(confusion, data.classes), result["epochs_run"])
        logger.log_hparams(hparams(cfg), {"best_val_acc": result["best_val_acc"], "test_acc": test["test/acc"]})
    finally:
        logger.close()
    print_per_class(console, per_class, confusion, title="per-class test accuracy (best checkpoint)")

    summary = {
        "model": cfg.model.name,
        "dataset": cfg.data.name,
        "params": params,
        "epochs_run": result["epochs_run"],
        "best_epoch": result["best_epoch"],
        "best_val_acc": result["best_val_acc"],
        "test_acc": test["test/acc"],
        "test_loss": test["test/loss"],
        "stopped_early": result["stopped_early"],
        "train_examples_per_s": result["train_examples_per_s"],
        "wall_s": round(time.perf_counter() - started, 3),
        "device": str(device),
        "status": "completed",
        "seed": cfg.seed,
        "input_shape": list(data.input_shape),
        "num_train": data.train.num_examples,
        "num_val": data.val.num_examples,
        "num_test": data.test.num_examples,
        "val_is_test": data.val_is_test,
        "overrides": _overrides(),
        "per_class_acc": per_class,
    }
    save_json(run_dir / SUMMARY_FILE, summary)
    console.print(f"test/acc {summary['test_acc']:.4f} (best epoch {summary['best_epoch']}, "
                  f"val/acc {summary['best_val_acc']:.4f}) in {summary['wall_s']:.1f}s; "
                  f"results in {run_dir}", style="bold", highlight=False)
    log.info("summary: %s", summary)
    return summary


def _refuse_finished_run_dir(run_dir: Path) -> None:
    # Two runs must never write into one directory (for example two launches in the same second).
    if (run_dir / SUMMARY_FILE).exists() or (run_dir / "checkpoints").exists():
        raise ConfigError(f"output_dir {run_dir} already holds a run; choose another hydra.run.dir")


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
    """Hydra task function; returns the value a sweeper maximises (best validation accuracy)."""
    try:
        return run(cfg)["best_val_acc"]
    except CnnbenchError as err:
        log.debug("run stopped by %s", type(err).__name__, exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    from .cli import main as cli_main

    cli_main()
