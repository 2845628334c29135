"""leaderboard.png: each run's val/acc over its epochs and over wall time, and test/acc against what was swept."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..engine import metrics as m
from ..runtime.files import atomic_write
from .leaderboard import override_columns
from .runs import Run, read_curve, swept_keys


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
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the curves, not on them


def plot_results(ax, rows: list[dict]) -> None:
    """test/acc against the one numeric swept key (one line per value of the other keys), else a bar per row."""
    grouped = f"{m.TEST_ACC}_mean" in rows[0]
    acc, std = (f"{m.TEST_ACC}_mean", f"{m.TEST_ACC}_std") if grouped else (m.TEST_ACC, None)
    rows = [row for row in rows if row[acc] is not None]
    keys = override_columns(rows)
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

    fig = Figure(figsize=(19, max(4.5, 1.5 + 0.4 * len(runs))), layout="constrained")
    FigureCanvasAgg(fig)  # render with Agg whatever backend matplotlib is configured for
    left, middle, right = fig.subplots(1, 3)
    plot_curves(left, runs)
    plot_curves(middle, runs, over="time")
    plot_results(right, rows)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
