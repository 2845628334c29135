"""Unknown keys: what the config files of conf/ define, plus the model factory's keyword arguments."""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import CONF_DIR
from ..errors import ConfigError
from ..models import model_options
from .rules import REPORTED_KEYS, SECTIONS

BASES = "base"  # conf/base/: what the options of a group share, pulled in with `- /base/<name>@_here_`


@lru_cache
def _option_files(group: str) -> tuple[dict, ...]:
    return tuple(load_option(path) for path in sorted(Path(CONF_DIR, group).glob("*.yaml")))


def load_option(path: Path) -> dict:
    """A group's option as Hydra composes it alone: the bases its defaults list places here, then its own keys."""
    own = load_yaml(path)
    merged: dict = {}
    for entry in own.pop("defaults", None) or []:
        if isinstance(entry, str) and entry.startswith(f"/{BASES}/") and entry.endswith("@_here_"):
            merged.update(load_option(Path(CONF_DIR, entry[1:].removesuffix("@_here_") + ".yaml")))
    return {**merged, **own}


def load_yaml(path: Path) -> dict:
    """A config file of conf/; one that YAML cannot read is a one-line ConfigError naming it."""
    try:
        loaded = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as err:  # yaml's ScannerError, ParserError... and OmegaConf's own
        raise ConfigError(f"{path} is not valid YAML ({' '.join(str(err).split())[:160]}); fix or remove it") from err
    return loaded if isinstance(loaded, dict) else {}


@lru_cache
def _root_config(root: str = "config") -> dict:
    return load_yaml(Path(CONF_DIR, f"{root}.yaml"))


def known_keys(cfg: DictConfig, section: str) -> list[str]:
    """Keys `cfg.<section>` may hold: those of the option chosen (matched by name or _target_), else of any."""
    if section in ("trainer", "console"):
        return list(_root_config()[section])
    if section == "model":
        return ["name", "init", *model_options(cfg.model.name)]
    if section == "reported":
        return list(REPORTED_KEYS)
    identity = "name" if section == "data" else "_target_"
    options = _option_files(section)
    chosen = [o for o in options if o.get(identity) == cfg[section].get(identity)] or options
    return list(dict.fromkeys(key for option in chosen for key in option))


def _top_level_keys(root: str) -> list[str]:
    groups = sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name != BASES)
    keys = [*_root_config(), *_root_config(root), *groups]
    return [key for key in dict.fromkeys(keys) if key not in ("defaults", "hydra")]


def check_known_keys(cfg: DictConfig, root: str) -> None:
    _reject_unknown([str(k) for k in cfg if k != "hydra"], _top_level_keys(root), parent="")
    for section in (*SECTIONS, "reported", "console"):
        if isinstance(cfg.get(section), DictConfig):
            _reject_unknown([str(k) for k in cfg[section]], known_keys(cfg, section), parent=section)


def _reject_unknown(keys: list[str], known: list[str], parent: str) -> None:
    prefix = f"{parent}." if parent else ""
    for key in keys:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f" (did you mean {prefix}{hint[0]}?)" if hint else ""
            where = f"keys under {parent}" if parent else "top-level keys"
            raise ConfigError(f"{prefix}{key} is not a config key{suggestion}; {where}: {', '.join(known)}")
