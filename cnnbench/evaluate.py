"""`python -m cnnbench.evaluate run=<run dir> [data.split=test|val] [key=value ...]`: a trained model's test report.

The command reloads `checkpoints/best.pt` and the resolved config stored inside it (overrides change it, e.g.
`trainer.device=cpu`), rebuilds the data and the model, and prints the same report as the end of training,
without training and without writing anything.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console

from .cli import run_command
from .config import build_model, data_settings, prepare_config, upgraded, validate_config
from .data import build_data, input_size
from .engine.checkpoint import load_checkpoint
from .engine.confusion import per_class_accuracy
from .engine.console import print_per_class
from .engine.loop import evaluate_with_confusion
from .engine.setup import use_amp
from .errors import ConfigError
from .launch import FROM_THIS_LAUNCH, MAY_CHANGE
from .runtime.devices import resolve_device
from .runtime.files import read_json
from .runtime.overrides import parse_overrides, path_argument
from .runtime.ownership import checkpoint_mismatch
from .runtime.rundir import SUMMARY_FILE, status_now

USAGE = "usage: python -m cnnbench.evaluate run=<run dir> [data.split=test|val] [key=value ...]"
FIXED_BY_THE_CHECKPOINT = ("model",)  # another network than the one whose weights best.pt holds
SPLITS = ("test", "val")


@dataclass
class Trained:
    """A run's best model, ready to evaluate, and what its inputs must look like."""

    run_dir: Path
    model: torch.nn.Module
    cfg: DictConfig  # the run's config, with the overrides given
    classes: list[str]
    checkpoint: Path
    epoch: int


def load_trained(run_dir: Path, overrides: list[str] = (), prepared: bool = False) -> Trained:
    """The run's best.pt in its own model, on the device its config (or `trainer.device=`) says, in eval mode.
    `overrides` change the saved config (only keys it has); `prepared`: read an image folder's facts again (needs
    the training folder; predicting does not)."""
    best = run_dir / "checkpoints" / "best.pt"
    if not run_dir.is_dir():
        raise ConfigError(f"run={run_dir} does not exist; give a run folder")
    if not best.is_file():
        what = "a run folder" if (run_dir / SUMMARY_FILE).is_file() else "a cnnbench run folder (no summary.json)"
        raise ConfigError(f"run={run_dir} has no checkpoints/best.pt: give {what} whose run finished at least one "
                          "epoch")
    checkpoint = load_checkpoint(best, require=("config", "model", "epoch"))
    mismatch = checkpoint_mismatch(best, checkpoint["config"], run_dir, MAY_CHANGE + FROM_THIS_LAUNCH)
    if mismatch:
        raise ConfigError(mismatch)
    cfg = OmegaConf.create(upgraded(checkpoint["config"]))
    OmegaConf.set_struct(cfg, True)
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:  # a key the run's config does not have
        raise ConfigError(f"cannot apply {' '.join(overrides)}: {str(err).splitlines()[0]}") from err
    validate_config(cfg)
    if prepared:
        cfg = prepare_config(cfg)
    _check_same_inputs(OmegaConf.create(checkpoint["config"]), cfg)
    model = build_model(cfg, init="default")
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as err:
        raise ConfigError(f"the weights in {best} do not fit the model these overrides build "
                          f"({str(err).splitlines()[0]})") from err
    model = model.to(resolve_device(cfg.trainer.device)).eval()
    if cfg.trainer.get("channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    return Trained(run_dir, model, cfg, class_names(checkpoint, run_dir, cfg), best, int(checkpoint["epoch"]))


def class_names(checkpoint: dict, run_dir: Path, cfg: DictConfig) -> list[str]:
    """The run's class names: kept in best.pt, else the order of its summary's per-class accuracy, else numbers."""
    if isinstance(checkpoint.get("classes"), list):
        return [str(name) for name in checkpoint["classes"]]
    per_class = (read_json(run_dir / SUMMARY_FILE) or {}).get("test/per_class_acc")
    if isinstance(per_class, dict) and len(per_class) == cfg.data.num_classes:
        return list(per_class)
    return [str(i) for i in range(cfg.data.num_classes)]


def evaluate_run(run_dir: Path, overrides: list[str], console: Console, split: str = "test") -> dict:
    """Evaluate a run's best checkpoint on `split` (test or val), its config changed by `overrides`."""
    if split not in SPLITS:
        raise ConfigError(f"data.split={split} is not allowed: expected one of {', '.join(SPLITS)}")
    fixed = [o for o in overrides if o.split("=", 1)[0].startswith(FIXED_BY_THE_CHECKPOINT)]
    if fixed:
        raise ConfigError(f"{fixed[0]} is not allowed: best.pt holds the weights of the run's own model; evaluate "
                          "another run directory instead")
    trained = load_trained(run_dir, overrides, prepared=True)
    cfg, model = trained.cfg, trained.model
    state = status_now(run_dir, read_json(run_dir / SUMMARY_FILE) or {})
    if state in ("running", "stale"):
        console.print(f"note: this run is {'still training' if state == 'running' else 'dead (stale): it stopped'}"
                      f" without finishing; best.pt is its best epoch so far", highlight=False)
    device = next(model.parameters()).device
    data = build_data(data_settings(cfg), device, cfg.seed)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.trainer.label_smoothing)
    loader = data.test if split == "test" else data.val
    # the precision and the test-time augmentation of the run's own test
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp(cfg.trainer.get("amp", "auto"), device)):
        metrics, confusion = evaluate_with_confusion(model, loader, loss_fn, len(data.classes), prefix=split,
                                                     tta=cfg.trainer.get("tta", "none"))
    per_class = per_class_accuracy(confusion, data.classes)
    console.print(f"{cfg.model.name} on {cfg.data.name} ({split}, {loader.num_examples:,} images), "
                  f"best checkpoint of epoch {trained.epoch}: {split}/acc {metrics[f'{split}/acc']:.4f}, "
                  f"{split}/loss {metrics[f'{split}/loss']:.4f}", highlight=False)
    print_per_class(console, per_class, confusion)
    return {**metrics, f"{split}/per_class_acc": per_class, "epoch": trained.epoch}


def _check_same_inputs(saved, cfg) -> None:
    """The weights fit images of the size, channels and classes they were trained on."""
    def shape(c) -> str:
        return f"{c.data.num_classes} classes of {c.data.in_chans}x{input_size(c.data)}x{input_size(c.data)} images"

    if shape(saved) != shape(cfg):
        raise ConfigError(f"best.pt was trained on {shape(saved)}; these overrides give {shape(cfg)}: keep "
                          "data.in_chans, data.num_classes and data.resize as the run had them")


def parse_args(argv: list[str]) -> tuple[Path, str, list[str]]:
    """The run directory, the split, and the other overrides of an evaluate command line."""
    runs, rest = path_argument(argv, "run")  # a plain path: its name may hold `=`, `,`, spaces, quotes, `~`
    if len(runs) != 1:
        raise ConfigError(USAGE)
    overrides = parse_overrides(rest)
    splits = [o.value for o in overrides if o.key == "data.split"]
    others = [o for o in overrides if o.key not in ("run", "data.split")]
    for override in others:
        if override.prefix or override.sweep or override.open_sweep:
            raise ConfigError(f"{override.text} is not allowed here: evaluate takes plain key=value overrides "
                              f"of the run's config; {USAGE}")
    return runs[0], (splits[-1] if splits else "test"), [o.text for o in others]


def evaluate_command(argv: list[str]) -> dict:
    run_dir, split, overrides = parse_args(argv)
    return evaluate_run(run_dir, overrides, Console(soft_wrap=True), split)


def main(argv: list[str] | None = None) -> int:
    return run_command(evaluate_command, argv)


if __name__ == "__main__":
    sys.exit(main())
