"""What the console shows of a run's config before it starts (`console.config`): what differs from the defaults,
all of it, or nothing. run.log and <run dir>/.hydra/config.yaml always hold the whole config.

The defaults are conf/config.yaml with the same group options (model, data, optimizer, scheduler) and nothing
else: no experiment and no command line, so an experiment's settings show as differences.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from omegaconf import OmegaConf

from .. import CONF_DIR
from ..runtime.overrides import flatten
from .keys import load_option, load_yaml
from .rules import SECTIONS

GROUPS = ("model", "data", "optimizer", "scheduler")
IDENTITY = {"model": "name", "data": "name"}  # how a group's option is recognised in a config (else _target_)
NOT_SETTINGS = ("output_dir", "reported")  # where the run writes (the header says it), what its seed reported


@lru_cache
def _group_options(group: str) -> dict[str, dict]:
    return {path.stem: load_option(path) for path in sorted(Path(CONF_DIR, group).glob("*.yaml"))}


def option_of(config: dict, group: str) -> str | None:
    """The conf/<group>/ option a config's section came from (matched by name or _target_), None if none is."""
    key = IDENTITY.get(group, "_target_")
    section = config.get(group) or {}
    matches = [name for name, option in _group_options(group).items() if option.get(key) == section.get(key)]
    return section.get(key) if section.get(key) in matches else (matches[0] if matches else None)


def defaults_for(choices: dict[str, str]) -> dict:
    """conf/config.yaml composed with these group options only (each with the bases its defaults list names)."""
    root = {k: v for k, v in load_yaml(Path(CONF_DIR, "config.yaml")).items() if k not in ("defaults", "hydra")}
    for group in GROUPS:
        if choices.get(group) in _group_options(group):
            root[group] = _group_options(group)[choices[group]]
    return root


def differences(config: dict, choices: dict[str, str] | None = None) -> list[str]:
    """`data.batch_size: 128 (default 256)` for each setting that differs from the defaults of its options."""
    choices = {group: (choices or {}).get(group) or option_of(config, group) for group in GROUPS}
    defaults = flatten(defaults_for(choices))
    lines = []
    for key, value in flatten({k: v for k, v in config.items() if k not in NOT_SETTINGS}).items():
        if key not in defaults:
            lines.append(f"{key}: {_text(value)} (added)")
        elif defaults[key] != value:
            lines.append(f"{key}: {_text(value)} (default {_text(defaults[key])})")
    return lines


def _text(value) -> str:
    """A value as YAML writes it: null, true, [32, 64]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_text, value)) + "]"
    return str(value)


def config_shown(config: dict, mode: str, choices: dict[str, str] | None = None) -> str:
    """The text the console prints for `console.config=mode` (diff | full | none); '' for nothing."""
    if mode == "none":
        return ""
    if mode == "full":
        return OmegaConf.to_yaml(config)
    picked = [f"{group}={option_of(config, group) or '?'}" for group in GROUPS if group in SECTIONS]
    extra = [f"{group}={name}" for group, name in (choices or {}).items() if group not in GROUPS]
    lines = differences(config, choices)
    head = "config: " + " ".join(picked + extra)
    return head + ("; changed from the defaults:\n  " + "\n  ".join(lines) if lines else "; all defaults") + "\n"
