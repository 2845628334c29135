"""A leaderboard of runs: one row per run (or per group of seeds), the swept settings, the results, best first."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from rich.table import Table

from ..engine import metrics as m
from ..runtime.files import atomic_write
from .runs import Run, swept_keys

ACCURACIES = (m.VAL_ACC_BEST, m.TEST_ACC)  # mean ± std when seeds are grouped; the other metrics are means
METRICS = (*ACCURACIES, "epochs_run", "params", m.TRAIN_EXAMPLES_PER_S, m.WALL_S)
LOWER_IS_BETTER = {m.WALL_S}
FORMATS = {"n": "{:d}", m.VAL_ACC_BEST: "{:.4f}", m.TEST_ACC: "{:.4f}", "epochs_run": "{:g}", "params": "{:,.0f}",
           m.TRAIN_EXAMPLES_PER_S: "{:,.0f}", m.WALL_S: "{:.1f}", "reported": "{:.4f}", "Δ": "{:+.4f}"}
COMPARED = ("reported", "Δ")  # the seed's number, and measured minus it (mean ± std minus it for seeds grouped)
TARGET = ("epoch_at_target", m.TO_TARGET_S)  # shown when a run had a trainer.target_acc
FORMATS.update({"epoch_at_target": "{:g}", m.TO_TARGET_S: "{:.1f}"})
LOWER_IS_BETTER.add(m.TO_TARGET_S)


def _run_row(run: Run, keys: list[str], compared: bool, targeted: bool = False) -> dict:
    row = {"run": run.name, **{key: run.settings.get(key) for key in keys}, "status": run.status,
           **{metric: run.metric(metric) for metric in (*METRICS, *(TARGET if targeted else ()))}}
    if compared:
        metric, value = run.reported or (None, None)
        measured = run.metric(metric) if metric else None
        row.update({"reported": value, "Δ": measured - value if measured is not None else None})
    return row


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    return (statistics.fmean(values) if values else None), (statistics.stdev(values) if len(values) > 1 else None)


def _group_row(group: list[Run], keys: list[str], compared: bool, targeted: bool = False) -> dict:
    row = {"run": group_label(group), **{key: group[0].settings.get(key) for key in keys},
           "status": group[0].status, "n": len(group)}
    for metric in (*METRICS, *(TARGET if targeted else ())):
        mean, std = _mean_std([value for run in group if (value := run.metric(metric)) is not None])
        if metric in ACCURACIES:
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean, std
        else:
            row[metric] = mean  # of the runs that have it: a target's columns, of the runs that reached it
    if targeted:
        row["reached_target"] = f"{sum(run.metric(m.TO_TARGET_S) is not None for run in group)}/{len(group)}"
    if compared:
        metric, value = group[0].reported or (None, None)
        mean, std = _mean_std([x for run in group if metric and (x := run.metric(metric)) is not None])
        row.update({"reported": value, "Δ_mean": mean - value if mean is not None else None, "Δ_std": std})
    return row


def group_label(group: list[Run]) -> str:
    """What a group of seeds shares, for its row: `seeds 0,1,2` (a lone run keeps its name)."""
    if len(group) == 1:
        return group[0].name
    seeds = [str(run.settings.get("seed", run.summary.get("seed", "?"))) for run in group]
    return f"seeds {','.join(seeds)}"


def dataset_of(settings: dict) -> str:
    return str(settings.get("data") or settings.get("data.name") or "")


def leaderboard(runs: list[Run], group_seeds: bool = False, sort: str = m.TEST_ACC) -> list[dict]:
    """One row per run (or per group of completed seeds), best `sort` first, rows without it last; runs of
    several datasets are grouped by dataset (in the order they first appear), best first within each."""
    compared = any(run.reported for run in runs)
    targeted = any(run.metric(m.TO_TARGET_S) is not None for run in runs)
    if group_seeds:
        keys = swept_keys(runs, exclude=("seed",))
        groups: dict[tuple, list[Run]] = {}
        for run in runs:  # only completed runs are averaged: the others stay visible on rows of their own
            group_key = tuple(run.settings.get(key) for key in keys) if run.status == "completed" else (run.path,)
            groups.setdefault(group_key, []).append(run)
        rows = [_group_row(group, keys, compared, targeted) for group in groups.values()]
    else:
        keys = swept_keys(runs)
        rows = [_run_row(run, keys, compared, targeted) for run in runs]
    if sort not in rows[0] and f"{sort}_mean" not in rows[0]:
        return rows
    column = f"{sort}_mean" if group_seeds and sort in ACCURACIES else sort
    sign = 1 if sort in LOWER_IS_BETTER else -1
    datasets = list(dict.fromkeys(str(row.get("data") or "") for row in rows))  # "data" is a column when it varies
    return sorted(rows, key=lambda row: (datasets.index(str(row.get("data") or "")), row[column] is None,
                                         sign * (row[column] or 0)))


def override_columns(rows: list[dict]) -> list[str]:
    paired = (f"{a}_{s}" for a in (*ACCURACIES, "Δ") for s in ("mean", "std"))
    fixed = {"run", "status", "n", "reached_target", *METRICS, *COMPARED, *TARGET, *paired}
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
            spread = FORMATS.get(header, "{}").replace("+", "")  # a spread has no sign
            line.append(f"{text} ± {spread.format(std)}" if std is not None else text)
        cells.append(line)
    return headers, cells


# The console's shorter names for the wide columns (the files keep the metric names); the columns left out first
# when a terminal is too narrow for all, in this order.
CONSOLE_LABELS = {m.TRAIN_EXAMPLES_PER_S: "img/s", m.WALL_S: "time (s)", "epochs_run": "epochs", m.TO_TARGET_S:
                  "to target (s)", "epoch_at_target": "target epoch", "reached_target": "reached"}
LEFT_OUT_FIRST = (m.TRAIN_EXAMPLES_PER_S, "params", m.WALL_S, "epoch_at_target", m.TO_TARGET_S, "epochs_run",
                  "reached_target", "reported", "Δ", m.VAL_ACC_BEST, "n")
MIN_RUN_WIDTH = 12  # the run column folds its names to this width before a column is left out


def render(rows: list[dict], sort: str, width: int | None = None) -> Table:
    """The leaderboard as a rich table that fits `width` columns (None: any width, full names): the wide columns get
    short labels, run names fold, and what still does not fit is left out, said in the caption (the files keep
    all)."""
    headers, cells = display(rows)
    labels = [_console_label(header, headers) if width is not None else header for header in headers]
    kept = list(range(len(headers)))
    left_out = []

    def needed(columns: list[int]) -> int:
        widths = [max([len(labels[i])] + [len(line[i]) for line in cells]) for i in columns]
        if headers[columns[0]] == "run":
            widths[0] = min(widths[0], max(MIN_RUN_WIDTH, len(labels[columns[0]])))
        return sum(w + 3 for w in widths) + 1

    for header in LEFT_OUT_FIRST:
        if width is None or needed(kept) <= width:
            break
        if header in headers and headers.index(header) in kept:
            kept.remove(headers.index(header))
            left_out.append(labels[headers.index(header)])
    one, many = ("group of seeds", "groups of seeds") if "n" in rows[0] else ("run", "runs")
    caption = f"left out to fit: {', '.join(left_out)} (all in leaderboard.md)" if left_out else None
    table = Table(title=f"{len(rows)} {one if len(rows) == 1 else many}, best {sort} first", caption=caption)
    for i in kept:
        table.add_column(labels[i], justify="right" if headers[i] in FORMATS else "left",
                         overflow="fold", min_width=len(labels[i]) if headers[i] != "run" else None)
    for row, line in zip(rows, cells, strict=True):
        table.add_row(*(line[i] for i in kept), style=None if row["status"] == "completed" else "yellow")
    return table


def _console_label(header: str, headers: list[str]) -> str:
    """A swept key by its last part when no other column ends the same way (`optimizer.lr` -> `lr`)."""
    if header in CONSOLE_LABELS:
        return CONSOLE_LABELS[header]
    leaf = header.rsplit(".", 1)[-1]
    if "." in header and sum(h.rsplit(".", 1)[-1] == leaf for h in headers) == 1:
        return leaf
    return header


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
