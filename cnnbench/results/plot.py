"""leaderboard.png: each run's val/acc over its epochs and over wall time, and test/acc against what was swept; one
row of panels per dataset when the runs span several. Runs are labelled by what tells them apart, shortly; past
MAX_LEGEND runs the curves keep their colours and the legend says how many it leaves out (the table has them all)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..engine import metrics as m
from ..runtime.files import atomic_write
from .leaderboard import dataset_of, override_columns
from .runs import Run, read_curve, swept_keys

MAX_LEGEND = 12
UNSET = ("", "None", "null")


def _label(settings: dict, keys: list[str], fallback: str) -> str:
    """`lenet5 adam lr=0.001`: a group choice by its value, any other key by its last part (when those tell the keys
    apart), unset values left out."""
    short = [key.rsplit(".", 1)[-1] for key in keys]
    names = short if len(set(short)) == len(short) else keys
    parts = []
    for name, key in zip(names, keys, strict=True):
        value = settings.get(key)
        if value is None or str(value) in UNSET:
            continue
        parts.append(str(value) if "." not in key and "/" not in key and key != "seed" else f"{name}={value}")
    return textwrap.fill(" ".join(parts), 28) or fallback


def _as_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def plot_curves(ax, runs: list[Run], over: str = "epoch") -> None:
    """Each run's val/acc against its epochs, or (over="time") against the seconds since it started."""
    keys = swept_keys(runs)
    for run in runs:
        epochs, accs = read_curve(run.path / "metrics.csv")
        xs = epochs if over == "epoch" else read_curve(run.path / "metrics.csv", m.ELAPSED_S)[1]
        if epochs and len(xs) == len(accs):
            ax.plot(xs, accs, marker=".", label=_label(run.settings, keys, run.name))
    if over == "epoch":
        ax.set(title="validation accuracy", xlabel="epoch", ylabel=m.VAL_ACC)
        ax.xaxis.get_major_locator().set_params(integer=True)
    else:
        ax.set(title="who gets where first", xlabel="seconds since the run started (time/elapsed_s)",
               ylabel=m.VAL_ACC)
    if ax.lines and over == "epoch":
        handles, labels = ax.get_legend_handles_labels()
        left_out = len(handles) - MAX_LEGEND
        ax.legend(handles[:MAX_LEGEND], labels[:MAX_LEGEND], fontsize="x-small", loc="upper left",
                  bbox_to_anchor=(1.02, 1),  # beside the curves, not on them
                  title=f"{MAX_LEGEND} of {len(handles)} runs (all in the table)" if left_out > 0 else None,
                  title_fontsize="x-small")


def plot_results(ax, rows: list[dict]) -> None:
    """test/acc against the one numeric swept key (one line per value of the other keys), else a bar per row."""
    grouped = bool(rows) and f"{m.TEST_ACC}_mean" in rows[0]
    acc, std = (f"{m.TEST_ACC}_mean", f"{m.TEST_ACC}_std") if grouped else (m.TEST_ACC, None)
    rows = [row for row in rows if row.get(acc) is not None]
    keys = [key for key in override_columns(rows) if len({str(row.get(key)) for row in rows}) > 1]
    numeric = [key for key in keys if rows and all(_as_float(row[key]) is not None for row in rows)]
    if len(numeric) == 1:
        x_key, others = numeric[0], [key for key in keys if key != numeric[0]]
        series: dict[str, list[dict]] = {}
        for row in rows:
            series.setdefault(_label(row, others, m.TEST_ACC), []).append(row)
        for label, points in series.items():
            points.sort(key=lambda row: float(row[x_key]))
            ax.errorbar([float(r[x_key]) for r in points], [r[acc] for r in points], marker="o", capsize=3,
                        yerr=[r[std] or 0 for r in points] if std else None, label=label)
        xs = [float(row[x_key]) for row in rows]
        if min(xs) > 0 and max(xs) > 10 * min(xs):
            ax.set_xscale("log")
        ax.set(xlabel=x_key, ylabel=m.TEST_ACC)
        if len(series) > 1:
            ax.legend(fontsize="x-small")
    else:
        labels = [_label(row, keys, row["run"]) for row in rows]
        ax.barh(labels, [row[acc] for row in rows], xerr=[row[std] or 0 for row in rows] if std else None)
        ax.invert_yaxis()  # best on top, as in the table
        ax.set(xlabel=m.TEST_ACC)
        ax.tick_params(axis="y", labelsize="x-small")
    ax.set_title("test accuracy" + (" (mean ± std over seeds)" if grouped else ""))
    if not rows:
        ax.text(0.5, 0.5, f"no run has a {m.TEST_ACC} yet", ha="center", va="center", transform=ax.transAxes)


def plot(runs: list[Run], rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    datasets = list(dict.fromkeys(dataset_of(run.settings) for run in runs))
    heights = [max(4.5, 1.5 + 0.35 * min(len([r for r in runs if dataset_of(r.settings) == d]), MAX_LEGEND))
               for d in datasets]
    fig = Figure(figsize=(19, sum(heights)), layout="constrained")
    FigureCanvasAgg(fig)  # render with Agg whatever backend matplotlib is configured for
    panels = fig.subplots(len(datasets), 3, squeeze=False, gridspec_kw={"height_ratios": heights})
    for dataset, (left, middle, right) in zip(datasets, panels, strict=True):
        own = [run for run in runs if dataset_of(run.settings) == dataset]
        plot_curves(left, own)
        plot_curves(middle, own, over="time")
        plot_results(right, [row for row in rows if len(datasets) == 1 or str(row.get("data")) == dataset])
        if len(datasets) > 1:
            for ax in (left, middle, right):
                ax.set_title(f"{dataset}: {ax.get_title()}")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
