"""`python -m cnnbench.report <dir> [<dir> ...]`: a leaderboard of finished, failed and unfinished runs.

Each directory is a run or a sweep, searched recursively for runs (a `summary.json`, or a `.hydra/overrides.yaml`
for a run that has none yet). The rows show the overrides that differ between the runs and each run's results,
best first; `leaderboard.csv`, `leaderboard.md` and `leaderboard.png` are written into the first directory
(or `report.out=<dir>`). `report.group_seeds=true` merges runs that differ only in `seed` into one row: n and
mean ± std. Options and their defaults: conf/report.yaml.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console

from . import CONF_DIR
from .cli import run_command
from .engine.metrics import LEGACY_SUMMARY_KEYS
from .errors import CnnbenchError, ConfigError
from .results.leaderboard import METRICS, TARGET, leaderboard, render, write_csv, write_markdown
from .results.plot import plot
from .results.runs import Run, find_runs
from .runtime import ledger
from .runtime.overrides import Override, shell_command

USAGE = "usage: python -m cnnbench.report DIR [DIR ...] [report.out=DIR] [report.group_seeds=true] [report.sort=KEY]"
OUTPUTS = ("leaderboard.csv", "leaderboard.md", "leaderboard.png")


def parse_args(argv: list[str]) -> tuple[list[Path], DictConfig]:
    """Directories and the `report` options; a `key=value` argument is an option unless it names a path."""
    defaults = OmegaConf.load(Path(CONF_DIR) / "report.yaml")
    allowed = [f"report.{key}" for key in defaults.report]
    dirs, options = [], []
    for arg in argv:
        if "=" in arg and not Path(arg).exists():
            option = Override.from_text(arg)
            if option.prefix or option.key not in allowed:
                typed = option.text.split("=", 1)[0]
                raise ConfigError(f"{typed} is not a report option; allowed: {', '.join(allowed)}")
            options.append(option.text)
        elif arg.startswith("-"):
            raise ConfigError(f"{arg} is not an option; {USAGE}")
        else:
            dirs.append(Path(arg))
    if not dirs:
        raise ConfigError(f"no directory given; {USAGE}")
    try:
        cfg = OmegaConf.merge(defaults, OmegaConf.from_dotlist(options)).report
    except OmegaConfBaseException as err:
        raise ConfigError(f"cannot read {' '.join(options)}: {str(err).splitlines()[0]}") from err
    if not isinstance(cfg.group_seeds, bool):
        raise ConfigError(f"report.group_seeds={cfg.group_seeds} is not allowed: expected true or false")
    cfg.sort = LEGACY_SUMMARY_KEYS.get(cfg.sort, cfg.sort)  # report.sort=test_acc, as before the shared names
    if cfg.sort not in (*METRICS, *TARGET):
        raise ConfigError(f"report.sort={cfg.sort} is not allowed: choose one of {', '.join((*METRICS, *TARGET))}")
    return dirs, cfg


def write_report(runs: list[Run], rows: list[dict], out: Path) -> list[Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
        csv_path, md_path, png_path = paths = [out / name for name in OUTPUTS]
        write_csv(rows, csv_path)
        write_markdown(rows, md_path)
        plot(runs, rows, png_path)
    except OSError as err:  # an unwritable report.out, a full disk
        raise CnnbenchError(f"cannot write the report into {out}: {err}") from err
    return paths


def print_report(rows: list[dict], sort: str, paths: list[Path]) -> None:
    console = Console()
    if not console.is_terminal:  # a pipe or a file has no width to fit: keep every cell whole
        console = Console(width=1000)
    console.print(render(rows, sort, width=console.width if console.is_terminal else None))
    console.print("\n".join(f"wrote {path}" for path in paths), highlight=False, soft_wrap=True)


def report(argv: list[str]) -> list[dict]:
    if any(arg in ("-h", "--help") for arg in argv):
        print(f"{USAGE}\n\n{__doc__.strip()}")
        return []
    dirs, options = parse_args(argv)
    runs = find_runs(dirs)
    rows = leaderboard(runs, options.group_seeds, options.sort)
    paths = write_report(runs, rows, Path(str(options.out)) if options.out is not None else dirs[0])
    print_report(rows, options.sort, paths)
    for problem in (problem for run in runs for problem in run.problems):
        print(f"unreadable: {problem} (the run is listed with what could be read)", file=sys.stderr)
    for line in sweep_lines(dirs):
        print(line)
    return rows


def sweep_lines(dirs: list[Path]) -> list[str]:
    """For each sweep folder given, its jobs' states from its ledger, and the command that continues it when
    jobs are left (pending, interrupted, or running in another process)."""
    lines = []
    for folder in dirs:
        book = ledger.read(folder)
        if not book or not isinstance(book.get("jobs"), list):
            continue
        try:
            counts = ledger.counts(book)
        except (KeyError, TypeError, AttributeError):  # a ledger edited by hand: the table above still stands
            continue
        line = f"sweep {folder}: {len(book['jobs'])} jobs, {', '.join(f'{n} {s}' for s, n in counts.items())}"
        if {"pending", "interrupted", "running"} & counts.keys() and book.get("continue"):
            line += f"; continue: {shell_command(*book['continue'])}"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    return run_command(report, argv)


if __name__ == "__main__":
    sys.exit(main())
