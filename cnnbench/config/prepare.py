"""The run's preparation: what validation cannot decide without reading files or building the model. An image
folder's channels, classes and (when null) mean and std are read from the folder into a copy of the config, the
rules those values answer to are checked, and the model is built on the meta device (no memory, no init), so that a
too-small input or a refused option is one line before anything trains."""

from __future__ import annotations

import copy

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from ..data import DataSettings
from ..data.folder import folder_facts
from ..errors import ConfigError
from ..runtime.devices import resolve_device
from .checks import check_normalization, check_rules, nondeterministic_on_cuda
from .model import build_model
from .rules import FILLED_FROM_FOLDER, RULES


def data_settings(cfg: DictConfig, **changes) -> DataSettings:
    """The frozen settings the data package is given, from a config's `data` section."""
    values = OmegaConf.to_container(cfg.data, resolve=True, throw_on_missing=False)
    return DataSettings.from_mapping(values, **changes)


def prepare_config(cfg: DictConfig, root: str = "config") -> DictConfig:
    """A validated `cfg` completed for a run (a copy; `cfg` is left as it is). `root` as in validate_config:
    `inspect` needs no mean and std."""
    cfg = copy.deepcopy(cfg)
    if OmegaConf.select(cfg, "data.name") == "image_folder":
        facts = folder_facts(data_settings(cfg), normalization=root == "config")
        with open_dict(cfg.data):
            for key, value in facts.items():
                cfg.data[key] = value
        check_rules(cfg, [rule for rule in RULES if rule.key in FILLED_FROM_FOLDER])
        if root == "config":
            check_normalization(cfg.data)
    with torch.device("meta"):
        model = build_model(cfg, init="default")
    _check_deterministic_on_cuda(cfg, model)
    return cfg


def _check_deterministic_on_cuda(cfg: DictConfig, model: torch.nn.Module) -> None:
    if not OmegaConf.select(cfg, "trainer.deterministic") or resolve_device(cfg.trainer.device).type != "cuda":
        return
    layers = nondeterministic_on_cuda(model)
    if layers:
        raise ConfigError(f"trainer.deterministic=true is not allowed with model={cfg.model.name} on CUDA: its "
                          f"{layers[0]} has no deterministic CUDA backward (set trainer.deterministic=false, or "
                          "train on the CPU)")
