"""`python -m cnnbench.report <dir> [<dir> ...]`: a leaderboard of finished, failed and unfinished runs.

Each directory is a run or a sweep, searched recursively for runs (a `summary.json`, or a `.hydra/overrides.yaml`
for a run that has none yet). The rows show the overrides that differ between the runs and each run's results,
best first; `leaderboard.csv`, `leaderboard.md` and `leaderboard.png` are written into the first directory
(or `report.out=<dir>`). `report.group_seeds=true` merges runs that differ only in `seed` into one row: n and
mean ± std. Options and their defaults: conf/report.yaml.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import statistics
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.table import Table

from . import CONF_DIR
from .checkpoint import atomic_write
from .errors import CnnbenchError, announce

log = logging.getLogger(__name__)

USAGE = "usage: python -m cnnbench.report DIR [DIR ...] [report.out=DIR] [report.group_seeds=true] [report.sort=KEY]"
ACCURACIES = ("best_val_acc", "test_acc")  # mean ± std when seeds are grouped; the other metrics are means
METRICS = (*ACCURACIES, "epochs_run", "params", "train_examples_per_s", "wall_s")
LOWER_IS_BETTER = {"wall_s"}
FORMATS = {"n": "{:d}", "best_val_acc": "{:.4f}", "test_acc": "{:.4f}", "epochs_run": "{:g}", "params": "{:,.0f}",
           "train_examples_per_s": "{:,.0f}", "wall_s": "{:.1f}"}
OUTPUTS = ("leaderboard.csv", "leaderboard.md", "leaderboard.png")


class ReportError(CnnbenchError):
    exit_code = 2


@dataclass
class Run:
    path: Path
    name: str  # the run's directory relative to the first directory given
    status: str  # summary.json's status; "incomplete" when a run has no summary.json
    overrides: dict[str, str]  # its command line, key -> value
    settings: dict[str, str]  # every resolved config value and group choice, overrides included
    has_config: bool  # False when .hydra/config.yaml is missing: then only the overrides are known
    summary: dict = field(default_factory=dict)

    def metric(self, key: str) -> float | None:
        value = self.summary.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_args(argv: list[str]) -> tuple[list[Path], DictConfig]:
    """Directories and the `report` options; a `key=value` argument is an option unless it names a path."""
    defaults = OmegaConf.load(Path(CONF_DIR) / "report.yaml")
    allowed = [f"report.{key}" for key in defaults.report]
    dirs, options = [], []
    for arg in argv:
        if "=" in arg and not Path(arg).exists():
            key = arg.split("=", 1)[0]
            if key not in allowed:
                raise ReportError(f"{key} is not a report option; allowed: {', '.join(allowed)}")
            options.append(arg)
        elif arg.startswith("-"):
            raise ReportError(f"{arg} is not an option; {USAGE}")
        else:
            dirs.append(Path(arg))
    if not dirs:
        raise ReportError(f"no directory given; {USAGE}")
    try:
        cfg = OmegaConf.merge(defaults, OmegaConf.from_dotlist(options)).report
    except OmegaConfBaseException as err:
        raise ReportError(f"cannot read {' '.join(options)}: {str(err).splitlines()[0]}") from err
    if not isinstance(cfg.group_seeds, bool):
        raise ReportError(f"report.group_seeds={cfg.group_seeds} is not allowed: expected true or false")
    if cfg.sort not in METRICS:
        raise ReportError(f"report.sort={cfg.sort} is not allowed: choose one of {', '.join(METRICS)}")
    return dirs, cfg


def _read(path: Path, parse, default):
    try:
        return parse(path.read_text()) if path.is_file() else default
    except (OSError, ValueError, yaml.YAMLError):  # a half-written or foreign file counts as missing
        return default


def _text(value) -> str:
    """A config value as it is written in an override: null, true, 0.1."""
    return json.dumps(value) if value is None or isinstance(value, bool) else str(value)


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = _text(value)
    return flat


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """`["optimizer.lr=0.1", "+x=1"]` -> `{"optimizer.lr": "0.1", "x": "1"}`; deletions and hydra.* are left out."""
    parsed = {}
    for override in overrides:
        key, sep, value = str(override).partition("=")
        key = key.lstrip("+")
        if sep and not key.startswith(("~", "hydra.")):
            parsed[key] = value
    return parsed


def load_run(path: Path, name: str | None = None) -> Run:
    summary = _read(path / "summary.json", json.loads, {})
    if not isinstance(summary, dict):
        summary = {"status": "unreadable"}
    hydra_dir = path / ".hydra"
    command_line = summary.get("overrides") or _read(hydra_dir / "overrides.yaml", yaml.safe_load, None) or []
    overrides = parse_overrides(command_line)
    config = _read(hydra_dir / "config.yaml", yaml.safe_load, None)
    config = config if isinstance(config, dict) else {}
    hydra = _read(hydra_dir / "hydra.yaml", yaml.safe_load, None) or {}
    choices = (hydra.get("hydra", {}).get("runtime", {}).get("choices") or {}) if isinstance(hydra, dict) else {}
    group_choices = {group: _text(choice) for group, choice in choices.items() if not group.startswith("hydra/")}
    settings = {**_flatten(config), **group_choices, **overrides}
    status = str(summary.get("status", "incomplete"))
    return Run(path, name or path.name, status, overrides, settings, bool(config), summary)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_runs(dirs: list[Path]) -> list[Run]:
    """Every run under `dirs`, in directory order (sweep jobs 0, 1, ..., 10), each listed once."""
    found: dict[Path, Run] = {}
    for folder in dirs:
        if not folder.is_dir():
            raise ReportError(f"{folder} {'is not a directory' if folder.exists() else 'does not exist'}")
        paths = {p.parent for p in folder.rglob("summary.json")} | {
            p.parent.parent for p in folder.rglob(".hydra/overrides.yaml")}
        if not paths:
            raise ReportError(f"{folder} contains no run (no summary.json or .hydra/overrides.yaml under it)")
        for path in sorted(paths, key=_natural_key):
            name = os.path.relpath(path, dirs[0])
            found.setdefault(path.resolve(), load_run(path, path.name if name == "." else name))
    return list(found.values())


def swept_keys(runs: list[Run], exclude: tuple[str, ...] = ()) -> list[str]:
    """The override keys whose values differ between the runs, in command-line order."""
    keys = dict.fromkeys(key for run in runs for key in run.overrides if key not in exclude)
    known = {key: {run.settings.get(key) for run in runs if run.has_config or key in run.overrides} for key in keys}
    return [key for key in keys if len(known[key]) > 1]


def _run_row(run: Run, keys: list[str]) -> dict:
    return {"run": run.name, **{key: run.settings.get(key) for key in keys}, "status": run.status,
            **{metric: run.metric(metric) for metric in METRICS}}


def _group_row(group: list[Run], keys: list[str]) -> dict:
    row = {"run": ",".join(run.name for run in group), **{key: group[0].settings.get(key) for key in keys},
           "status": group[0].status, "n": len(group)}
    for metric in METRICS:
        values = [value for run in group if (value := run.metric(metric)) is not None]
        mean = statistics.fmean(values) if values else None
        if metric in ACCURACIES:
            row[f"{metric}_mean"] = mean
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
        else:
            row[metric] = mean
    return row


def leaderboard(runs: list[Run], group_seeds: bool = False, sort: str = "test_acc") -> list[dict]:
    """One row per run (or per group of completed seeds), best `sort` first, rows without it last."""
    if group_seeds:
        keys = swept_keys(runs, exclude=("seed",))
        groups: dict[tuple, list[Run]] = {}
        for run in runs:  # only completed runs are averaged: the others stay visible on rows of their own
            group_key = tuple(run.settings.get(key) for key in keys) if run.status == "completed" else (run.path,)
            groups.setdefault(group_key, []).append(run)
        rows = [_group_row(group, keys) for group in groups.values()]
    else:
        keys = swept_keys(runs)
        rows = [_run_row(run, keys) for run in runs]
    column = f"{sort}_mean" if group_seeds and sort in ACCURACIES else sort
    sign = 1 if sort in LOWER_IS_BETTER else -1
    return sorted(rows, key=lambda row: (row[column] is None, sign * (row[column] or 0)))


def override_columns(rows: list[dict]) -> list[str]:
    fixed = {"run", "status", "n", *METRICS, *(f"{m}_{s}" for m in ACCURACIES for s in ("mean", "std"))}
    return [column for column in rows[0] if column not in fixed] if rows else []


def _cell(column: str, value) -> str:
    if value is None:
        return ""
    return FORMATS[column].format(value) if column in FORMATS else str(value)


def display(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells; a `<metric>_mean`/`_std` pair becomes one `mean ± std` column."""
    columns = [column for column in rows[0] if not column.endswith("_std")]
    headers = [column.removesuffix("_mean") for column in columns]
    cells = []
    for row in rows:
        line = []
        for column, header in zip(columns, headers, strict=True):
            text = _cell(header, row[column])
            std = row.get(f"{header}_std") if column.endswith("_mean") else None
            line.append(f"{text} ± {_cell(header, std)}" if std is not None else text)
        cells.append(line)
    return headers, cells


def render(rows: list[dict], sort: str) -> Table:
    headers, cells = display(rows)
    one, many = ("group of seeds", "groups of seeds") if "n" in rows[0] else ("run", "runs")
    table = Table(title=f"{len(rows)} {one if len(rows) == 1 else many}, best {sort} first")
    for header in headers:
        table.add_column(header, justify="right" if header in FORMATS else "left")
    for row, line in zip(rows, cells, strict=True):
        table.add_row(*line, style=None if row["status"] == "completed" else "yellow")
    return table


def write_csv(rows: list[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)  # None is written as an empty field
    atomic_write(path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))


def write_markdown(rows: list[dict], path: Path) -> None:
    headers, cells = display(rows)
    lines = [headers, ["---:" if header in FORMATS else "---" for header in headers], *cells]
    text = "".join("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |\n" for line in lines)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_curve(path: Path) -> tuple[list[int], list[float]]:
    """Epochs and val/acc from a run's metrics.csv; a row cut short by a crash is skipped."""
    epochs, accs = [], []
    try:
        with path.open(newline="") as file:
            for row in csv.DictReader(file):
                try:
                    epoch, acc = int(row["epoch"]), float(row["val/acc"])
                except (KeyError, TypeError, ValueError):
                    continue
                epochs.append(epoch)
                accs.append(acc)
    except OSError:
        pass
    return epochs, accs


def _label(settings: dict, keys: list[str], fallback: str) -> str:
    """`lr=0.1 batch_size=64`: the keys' last parts, when those tell them apart."""
    short = [key.rsplit(".", 1)[-1] for key in keys]
    names = short if len(set(short)) == len(short) else keys
    label = " ".join(f"{name}={settings.get(key)}" for name, key in zip(names, keys, strict=True))
    return textwrap.fill(label, 32) or fallback


def _as_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def plot_curves(ax, runs: list[Run]) -> None:
    keys = swept_keys(runs)
    for run in runs:
        epochs, accs = read_curve(run.path / "metrics.csv")
        if epochs:
            ax.plot(epochs, accs, marker=".", label=_label(run.settings, keys, run.name))
    ax.set(title="validation accuracy", xlabel="epoch", ylabel="val/acc")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if ax.lines:
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the curves, not on them


def plot_results(ax, rows: list[dict]) -> None:
    """test_acc against the one numeric swept key (one line per value of the other keys), else a bar per row."""
    grouped = "test_acc_mean" in rows[0]
    acc, std = ("test_acc_mean", "test_acc_std") if grouped else ("test_acc", None)
    rows = [row for row in rows if row[acc] is not None]
    keys = override_columns(rows)
    numeric = [key for key in keys if rows and all(_as_float(row[key]) is not None for row in rows)]
    if len(numeric) == 1:
        x_key, others = numeric[0], [key for key in keys if key != numeric[0]]
        series: dict[str, list[dict]] = {}
        for row in rows:
            series.setdefault(_label(row, others, "test_acc"), []).append(row)
        for label, points in series.items():
            points.sort(key=lambda row: float(row[x_key]))
            ax.errorbar([float(r[x_key]) for r in points], [r[acc] for r in points], marker="o", capsize=3,
                        yerr=[r[std] or 0 for r in points] if std else None, label=label)
        xs = [float(row[x_key]) for row in rows]
        if min(xs) > 0 and max(xs) > 10 * min(xs):
            ax.set_xscale("log")
        ax.set(xlabel=x_key, ylabel="test_acc")
        if len(series) > 1:
            ax.legend(fontsize="x-small")
    else:
        labels = [_label(row, keys, row["run"]) for row in rows]
        ax.barh(labels, [row[acc] for row in rows], xerr=[row[std] or 0 for row in rows] if std else None)
        ax.invert_yaxis()  # best on top, as in the table
        ax.set(xlabel="test_acc")
        ax.tick_params(axis="y", labelsize="x-small")
    ax.set_title("test accuracy" + (" (mean ± std over seeds)" if grouped else ""))
    if not rows:
        ax.text(0.5, 0.5, "no run has a test_acc yet", ha="center", va="center", transform=ax.transAxes)


def plot(runs: list[Run], rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, max(4.5, 1.5 + 0.4 * len(runs))), layout="constrained")
    FigureCanvasAgg(fig)  # render with Agg whatever backend matplotlib is configured for
    left, right = fig.subplots(1, 2)
    plot_curves(left, runs)
    plot_results(right, rows)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def write_report(runs: list[Run], rows: list[dict], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = paths = [out / name for name in OUTPUTS]
    write_csv(rows, csv_path)
    write_markdown(rows, md_path)
    plot(runs, rows, png_path)
    return paths


def print_report(rows: list[dict], sort: str, paths: list[Path]) -> None:
    console = Console()
    if not console.is_terminal:  # a pipe or a file has no width to fit: keep every cell whole
        console = Console(width=1000)
    console.print(render(rows, sort))
    console.print("\n".join(f"wrote {path}" for path in paths), highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        print(f"{USAGE}\n\n{__doc__.strip()}")
        return 0
    try:
        dirs, options = parse_args(argv)
        runs = find_runs(dirs)
        rows = leaderboard(runs, options.group_seeds, options.sort)
        paths = write_report(runs, rows, Path(str(options.out)) if options.out is not None else dirs[0])
        print_report(rows, options.sort, paths)
    except CnnbenchError as err:
        return announce(err, log)
    except BrokenPipeError:  # `... | head` stopped reading: end quietly, as command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:  # an unwritable report.out, a full disk
        print(f"error: cannot write the report: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
