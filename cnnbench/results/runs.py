"""Run directories read back: summary.json (today's keys or an older version's), the config and the overrides."""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..engine import metrics as m
from ..errors import ConfigError
from ..runtime.files import read_json
from ..runtime.overrides import flatten, settings_of
from ..runtime.ownership import SET_ASIDE_PREFIX
from ..runtime.rundir import SUMMARY_FILE, status_now


@dataclass
class Run:
    path: Path
    name: str  # the run's directory relative to the first directory given
    status: str  # summary.json's status; "incomplete" when a run has no summary.json
    overrides: dict[str, str]  # its command line, key -> value
    settings: dict[str, str]  # every resolved config value and group choice, overrides included
    has_config: bool  # False when .hydra/config.yaml is missing: then only the overrides are known
    summary: dict = field(default_factory=dict)  # with today's metric names
    problems: list[str] = field(default_factory=list)  # "<file>: <why>" for each of its files that cannot be read

    def metric(self, key: str) -> float | None:
        value = self.summary.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def reported(self) -> tuple[str, float] | None:
        """(metric, value) the run's seed reported, from summary.json, or None."""
        reported = self.summary.get("reported")
        if not isinstance(reported, dict) or not isinstance(reported.get("value"), int | float):
            return None
        return str(reported.get("metric", m.TEST_ACC)), float(reported["value"])


def _read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, ValueError, yaml.YAMLError):  # a half-written or foreign file counts as missing
        return None


def _text(value) -> str:
    """A config value as it is written in an override: null, true, 0.1."""
    return json.dumps(value) if value is None or isinstance(value, bool) else str(value)


def readable(text: str) -> str:
    """A file or folder name as it can be printed and written: undecodable bytes become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def unreadable_files(path: Path) -> list[str]:
    """`<file>: <why>` for each record of a run that exists but cannot be read as what it should be."""
    problems = []
    for name in (SUMMARY_FILE, "metrics.csv", ".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml"):
        file = path / name
        if not file.is_file():
            continue
        try:
            text = file.read_bytes().decode("utf-8")
            if name == SUMMARY_FILE and not isinstance(json.loads(text), dict):
                raise ValueError("not a JSON object")
            if name.endswith(".yaml"):
                yaml.safe_load(text)
        except UnicodeDecodeError as err:
            problems.append(f"{readable(str(file))}: byte 0x{err.object[err.start]:02x} at offset {err.start} is "
                            "not UTF-8 text")
        except (OSError, ValueError, yaml.YAMLError) as err:
            problems.append(f"{readable(str(file))}: {' '.join(str(err).split())[:120] or type(err).__name__}")
    return problems


def load_run(path: Path, name: str | None = None) -> Run:
    exists = (path / SUMMARY_FILE).is_file()
    summary = read_json(path / SUMMARY_FILE)
    summary = m.current_keys(summary) if summary is not None else ({"status": "unreadable"} if exists else {})
    hydra_dir = path / ".hydra"
    command_line = summary.get("overrides") or _read_yaml(hydra_dir / "overrides.yaml") or []
    overrides = settings_of(command_line)
    config = _read_yaml(hydra_dir / "config.yaml")
    config = config if isinstance(config, dict) else {}
    hydra = _read_yaml(hydra_dir / "hydra.yaml") or {}
    choices = (hydra.get("hydra", {}).get("runtime", {}).get("choices") or {}) if isinstance(hydra, dict) else {}
    group_choices = {group: _text(choice) for group, choice in choices.items() if not group.startswith("hydra/")}
    config_settings = {key: _text(value) for key, value in flatten(config).items() if value != {}}
    settings = {**config_settings, **group_choices, **overrides}
    status = status_now(path, summary)
    if "epochs_run" not in summary and "epochs_done" in summary:  # a run that has not finished (yet)
        summary["epochs_run"] = summary["epochs_done"]
    return Run(path, readable(name or path.name), status, overrides, settings, bool(config), summary,
               unreadable_files(path))


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_runs(dirs: list[Path]) -> list[Run]:
    """Every run under `dirs`, in directory order (sweep jobs 0, 1, ..., 10), each listed once."""
    found: dict[Path, Run] = {}
    for folder in dirs:
        if not folder.is_dir():
            raise ConfigError(f"{folder} {'is not a directory' if folder.exists() else 'does not exist'}")
        paths = {p.parent for p in folder.rglob(SUMMARY_FILE)} | {
            p.parent.parent for p in folder.rglob(".hydra/overrides.yaml")}
        paths = {p for p in paths if not any(part.startswith(SET_ASIDE_PREFIX) for part in p.parts)}
        if not paths:
            raise ConfigError(f"{folder} contains no run (no {SUMMARY_FILE} or .hydra/overrides.yaml under it)")
        for path in sorted(paths, key=_natural_key):
            name = os.path.relpath(path, dirs[0])
            found.setdefault(path.resolve(), load_run(path, path.name if name == "." else name))
    return list(found.values())


def swept_keys(runs: list[Run], exclude: tuple[str, ...] = ()) -> list[str]:
    """The override keys whose values differ between the runs, in command-line order."""
    keys = dict.fromkeys(key for run in runs for key in run.overrides if key not in exclude)
    known = {key: {run.settings.get(key) for run in runs if run.has_config or key in run.overrides} for key in keys}
    return [key for key in keys if len(known[key]) > 1]


def read_curve(path: Path, metric: str = m.VAL_ACC) -> tuple[list[int], list[float]]:
    """Epochs and one metric from a run's metrics.csv; a row cut short by a crash is skipped."""
    epochs, values = [], []
    try:
        with path.open(newline="", errors="replace") as file:  # a damaged byte loses its row, not the curve
            for row in csv.DictReader(file):
                try:
                    epoch, value = int(row["epoch"]), float(row[metric])
                except (KeyError, TypeError, ValueError):
                    continue
                epochs.append(epoch)
                values.append(value)
    except (OSError, csv.Error):
        pass
    return epochs, values
