"""`python -m cnnbench.report`: the leaderboard of a real 2×2 sweep (optimizer.lr × seed), seeds grouped as
mean ± std, runs that failed or never finished, the plot's choice of panel, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from cnnbench.report import main
from cnnbench.results.plot import plot_results
from cnnbench.results.runs import read_curve
from cnnbench.runtime.overrides import settings_of
from tests.conftest import TINY_RUN, hparams_of, main_in_process, tb_experiment

# A 2x2 sweep on the built-in digits: two epochs of LeNet-5 take well under a second each.
SWEEP = ["-m", "model=lenet5", "data=digits", "trainer.epochs=2", "trainer.device=cpu", "optimizer.lr=0.01,0.1",
         "seed=0,1"]
OPTIONS = "allowed: report.out, report.group_seeds, report.sort"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Four finished runs in <sweep>/0_lr-0.01_seed-0 ... <sweep>/3_..., shared by every test here
    (only read, never changed)."""
    sweep_dir = tmp_path_factory.mktemp("sweep")
    assert main_in_process(*SWEEP, f"hydra.sweep.dir={sweep_dir}") == 0
    return sweep_dir


@pytest.fixture
def damaged_sweep(sweep, tmp_path) -> Path:
    """A copy of the sweep in which job 1 crashed mid-epoch and job 2 was interrupted, plus a run that never began."""
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("checkpoints", "events.out.*", "leaderboard.*"))
    (copy / job(copy, 1) / "summary.json").unlink()
    with (copy / job(copy, 1) / "metrics.csv").open("a") as metrics:
        metrics.write("3,0.005,2.29")  # a row cut short by the crash
    summary = json.loads((copy / job(copy, 2) / "summary.json").read_text())
    (copy / job(copy, 2) / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    (copy / "never_started" / ".hydra").mkdir(parents=True)
    (copy / "never_started" / ".hydra" / "overrides.yaml").write_text("- optimizer.lr=0.5\n- seed=7\n")
    return copy


def job(sweep: Path, num: int) -> str:
    """The directory name of job `num`: its number, then its overrides (`1_lr-0.01_seed-1`)."""
    (name,) = [p.name for p in sweep.iterdir() if p.is_dir() and p.name.split("_")[0] == str(num)]
    return name


def summaries(sweep: Path) -> dict[str, dict]:
    """Job name -> summary.json."""
    return {path.parent.name: json.loads(path.read_text()) for path in sweep.glob("*/summary.json")}


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_a_row_per_run_best_test_acc_first_and_three_files_in_the_first_dir(sweep, capsys):
    assert main([str(sweep)]) == 0
    rows = read_csv(sweep / "leaderboard.csv")
    assert len(rows) == 4
    assert list(rows[0])[:4] == ["run", "optimizer.lr", "seed", "status"]  # only the swept keys, not data=...
    for row in rows:
        summary = summaries(sweep)[row["run"]]
        overrides = settings_of(summary["overrides"])
        assert (row["optimizer.lr"], row["seed"]) == (overrides["optimizer.lr"], overrides["seed"])
        assert float(row["test/acc"]) == summary["test/acc"]
        assert float(row["val/acc_best"]) == summary["val/acc_best"]
        assert int(row["params"]) == summary["params"] and row["status"] == "completed"
    test_accs = [float(row["test/acc"]) for row in rows]
    assert test_accs == sorted(test_accs, reverse=True)

    markdown = (sweep / "leaderboard.md").read_text().splitlines()
    assert len(markdown) == 2 + 4
    assert markdown[0].startswith("| run | optimizer.lr | seed | status | val/acc_best | test/acc |")
    assert (sweep / "leaderboard.png").read_bytes().startswith(b"\x89PNG")
    printed = capsys.readouterr().out
    for name in ("leaderboard.csv", "leaderboard.md", "leaderboard.png"):
        assert f"wrote {sweep / name}" in printed
    assert "4 runs, best test/acc first" in printed and "optimizer.lr" in printed


def test_each_run_of_the_sweep_has_an_hparams_entry_with_its_swept_values(sweep):
    experiment = tb_experiment(sweep)  # what `tensorboard --logdir <sweep>` shows
    assert sorted(experiment.differing) == ["optimizer.lr", "seed"]
    assert {"model", "data", "optimizer.lr", "seed"} <= set(experiment.columns)
    assert {"test/acc", "val/acc_best", "val/acc", "val/loss", "train/loss"} <= set(experiment.metrics)
    entries = [hparams_of(sweep / job(sweep, num)) for num in range(4)]
    assert all(set(entry.values) == set(entries[0].values) for entry in entries)  # the same keys in every job
    for num, entry in enumerate(entries):
        overrides = settings_of(summaries(sweep)[job(sweep, num)]["overrides"])
        assert entry.values["optimizer.lr"] == float(overrides["optimizer.lr"])


def test_a_run_written_before_the_shared_metric_names_is_read_as_today(sweep, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(sweep / job(sweep, 0), old / "0", ignore=shutil.ignore_patterns("checkpoints", "events.out.*"))
    summary = summaries(sweep)[job(sweep, 0)]
    legacy = {"best_val_acc": "val/acc_best", "test_acc": "test/acc", "test_loss": "test/loss",
              "per_class_acc": "test/per_class_acc", "train_examples_per_s": "throughput/train_examples_per_s",
              "wall_s": "time/wall_s", "first_step_s": "time/first_step_s"}
    renamed = {old_key: summary.pop(new_key) for old_key, new_key in legacy.items()}
    (old / "0" / "summary.json").write_text(json.dumps({**summary, **renamed}))
    assert main([str(old)]) == 0
    row = read_csv(old / "leaderboard.csv")[0]
    assert float(row["test/acc"]) == renamed["test_acc"] and float(row["time/wall_s"]) == renamed["wall_s"]
    assert main([str(old), "report.sort=test_acc", f"report.out={tmp_path / 'sorted'}"]) == 0  # the old sort name


def test_command_line_prints_the_table_and_writes_to_report_out(cli_main, sweep, tmp_path):
    out = tmp_path / "report"
    result = cli_main(str(sweep), f"report.out={out}", main=main)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "error" not in result.stderr
    table_rows = [line for line in result.stdout.splitlines() if "completed" in line and "│" in line]
    assert len(table_rows) == 4
    assert f"sweep {sweep}: 4 jobs, 4 completed" in result.stdout  # from its ledger
    assert all(len(line.split("│")) == len(table_rows[0].split("│")) for line in table_rows)  # no wrapped cells
    assert sorted(path.name for path in out.iterdir()) == ["leaderboard.csv", "leaderboard.md", "leaderboard.png"]


def test_seeds_are_grouped_as_mean_and_std(sweep, tmp_path):
    assert main([str(sweep), "report.group_seeds=true", f"report.out={tmp_path}"]) == 0
    rows = read_csv(tmp_path / "leaderboard.csv")
    assert len(rows) == 2
    assert "seed" not in rows[0]
    by_lr: dict[str, list[dict]] = {}
    for summary in summaries(sweep).values():
        by_lr.setdefault(settings_of(summary["overrides"])["optimizer.lr"], []).append(summary)
    for row in rows:
        group = by_lr[row["optimizer.lr"]]
        assert int(row["n"]) == len(group) == 2
        for metric in ("test/acc", "val/acc_best"):
            values = [summary[metric] for summary in group]
            assert float(row[f"{metric}_mean"]) == pytest.approx(statistics.mean(values))
            assert float(row[f"{metric}_std"]) == pytest.approx(statistics.stdev(values))
        assert float(row["time/wall_s"]) == pytest.approx(statistics.mean(s["time/wall_s"] for s in group))
    assert [float(row["test/acc_mean"]) for row in rows] == sorted((float(r["test/acc_mean"]) for r in rows),
                                                                   reverse=True)
    assert " ± " in (tmp_path / "leaderboard.md").read_text()


def test_unfinished_and_interrupted_runs_are_listed_with_their_status(damaged_sweep, tmp_path, capsys):
    assert main([str(damaged_sweep), f"report.out={tmp_path / 'runs'}"]) == 0
    rows = {row["run"]: row for row in read_csv(tmp_path / "runs" / "leaderboard.csv")}
    first, crashed, interrupted = (job(damaged_sweep, num) for num in (0, 1, 2))
    assert list(rows[first])[:4] == ["run", "optimizer.lr", "seed", "status"]  # unknown settings are no difference
    assert set(rows) == {*(job(damaged_sweep, num) for num in range(4)), "never_started"}
    assert rows[interrupted]["status"] == "interrupted" and rows[interrupted]["test/acc"] != ""
    for name in (crashed, "never_started"):
        assert rows[name]["status"] == "incomplete"
        assert rows[name]["test/acc"] == rows[name]["val/acc_best"] == ""
    assert list(rows)[-2:] == [crashed, "never_started"]  # no test/acc: listed last
    assert rows["never_started"]["optimizer.lr"] == "0.5"
    printed = capsys.readouterr().out
    assert "interrupted" in printed and "incomplete" in printed

    # grouped, only completed runs are averaged; the rest keep rows of their own
    assert main([str(damaged_sweep), "report.group_seeds=true", f"report.out={tmp_path / 'groups'}"]) == 0
    groups = read_csv(tmp_path / "groups" / "leaderboard.csv")
    assert sorted(row["status"] for row in groups) == ["completed", "completed", "incomplete", "incomplete",
                                                       "interrupted"]
    assert {row["n"] for row in groups} == {"1"}
    assert all(row["test/acc_std"] == "" for row in groups)


def test_a_row_cut_short_in_metrics_csv_is_skipped(damaged_sweep):
    epochs, accs = read_curve(damaged_sweep / job(damaged_sweep, 1) / "metrics.csv")
    assert epochs == [1, 2] and len(accs) == 2


def test_one_numeric_swept_key_is_plotted_against_test_acc_on_a_log_scale_if_it_spans_10x():
    rows = [{"run": str(i), "optimizer.lr": lr, "model": model, "status": "completed", "test/acc": 0.5 + i / 10}
            for i, (lr, model) in enumerate([("0.001", "lenet"), ("0.1", "lenet"), ("0.001", "resnet18")])]
    line_axes = Figure().subplots()
    plot_results(line_axes, rows)
    assert line_axes.get_xscale() == "log" and line_axes.get_xlabel() == "optimizer.lr"
    assert len(line_axes.lines) == 2  # one line per model

    rows = [{**row, "optimizer.lr": lr} for row, lr in zip(rows, ["0.01", "0.02", "0.03"], strict=True)]
    linear_axes = Figure().subplots()
    plot_results(linear_axes, rows)
    assert linear_axes.get_xscale() == "linear"

    rows = [{**row, "seed": str(i)} for i, row in enumerate(rows)]  # two numeric keys: a bar per run
    bar_axes = Figure().subplots()
    plot_results(bar_axes, rows)
    assert len(bar_axes.patches) == 3


@pytest.mark.parametrize(("args", "message"), [
    (["{tmp}", "report.foo=1"], f"error: report.foo is not a report option; {OPTIONS}"),
    (["{tmp}", "group_seeds=true"], f"error: group_seeds is not a report option; {OPTIONS}"),
    (["{tmp}/missing"], "error: {tmp}/missing does not exist"),
    (["{tmp}"], "error: {tmp} contains no run (no summary.json or .hydra/overrides.yaml under it)"),
    (["{tmp}", "report.group_seeds=maybe"], "error: report.group_seeds=maybe is not allowed: expected true or false"),
    (["{tmp}", "report.sort=acc"], "error: report.sort=acc is not allowed: choose one of val/acc_best, test/acc,"),
    (["{tmp}", "+report.out=x"], f"error: +report.out is not a report option; {OPTIONS}"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    assert main([arg.format(tmp=tmp_path) for arg in args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message.format(tmp=tmp_path)) and captured.err.count("\n") == 1


def test_a_reproduction_shows_what_the_seed_reported_and_the_difference(cli_main, tmp_path):
    reported = "reported={metric: test/acc, value: 0.5, by_model: {lenet: 0.25}, source: 'a seed, its table'}"
    study = tmp_path / "study"
    result = cli_main("-m", *TINY_RUN, "trainer.epochs=1", "model=lenet5,lenet", "seed=0,1", reported,
                      f"hydra.sweep.dir={study}")
    assert result.returncode == 0, result.stderr
    runs = {path.parent.name: json.loads(path.read_text()) for path in study.glob("*/summary.json")}
    by_model = {(s["model"], s["seed"]): s for s in runs.values()}
    assert by_model["lenet5", 0]["reported"] == {"metric": "test/acc", "value": 0.5, "source": "a seed, its table"}
    assert by_model["lenet", 1]["reported"]["value"] == 0.25  # by_model wins for its model
    assert main([str(study)]) == 0
    for row in read_csv(study / "leaderboard.csv"):
        summary = runs[row["run"]]
        assert float(row["reported"]) == summary["reported"]["value"]
        assert float(row["Δ"]) == pytest.approx(summary["test/acc"] - summary["reported"]["value"])
    assert main([str(tmp_path / "study"), "report.group_seeds=true", f"report.out={tmp_path / 'grouped'}"]) == 0
    grouped = {row["model"]: row for row in read_csv(tmp_path / "grouped" / "leaderboard.csv")}
    accs = [by_model["lenet5", seed]["test/acc"] for seed in (0, 1)]
    assert float(grouped["lenet5"]["Δ_mean"]) == pytest.approx(statistics.mean(accs) - 0.5)
    assert float(grouped["lenet5"]["Δ_std"]) == pytest.approx(statistics.stdev(accs))
    markdown = (tmp_path / "grouped" / "leaderboard.md").read_text()
    assert "| reported | Δ |" in markdown and " ± " in markdown.splitlines()[2].split("|")[-2]


def test_time_to_target_is_a_column_and_the_plot_shows_accuracy_over_wall_time(cli_main, tmp_path):
    sweep = tmp_path / "sweep"
    result = cli_main("-m", "model=lenet5", "data=digits", "trainer.device=cpu", "trainer.epochs=3",
                      "trainer.target_acc=0.15",
                      "optimizer.lr=0.02,0.001", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    assert main([str(sweep), "report.sort=time/to_target_s"]) == 0
    rows = read_csv(sweep / "leaderboard.csv")
    reached = [row for row in rows if row["time/to_target_s"]]
    summaries_by_run = summaries(sweep)
    for row in reached:
        assert float(row["time/to_target_s"]) == pytest.approx(summaries_by_run[row["run"]]["time/to_target_s"])
        assert int(float(row["epoch_at_target"])) == summaries_by_run[row["run"]]["epoch_at_target"]
    assert reached and rows[: len(reached)] == reached  # the runs that reached it first, the fastest on top
    assert main([str(sweep), "report.group_seeds=true", f"report.out={tmp_path / 'grouped'}"]) == 0
    grouped = read_csv(tmp_path / "grouped" / "leaderboard.csv")  # how many of each group's runs reached it
    assert sorted(row["reached_target"] for row in grouped) == sorted(
        f"{int(bool(row['time/to_target_s']))}/1" for row in rows)
    from matplotlib.figure import Figure

    from cnnbench.results.plot import plot_curves
    from cnnbench.results.runs import find_runs

    axes = Figure().subplots()
    plot_curves(axes, find_runs([sweep]), over="time")
    assert len(axes.lines) == 2 and axes.get_xlabel().startswith("seconds since the run started")
    elapsed = [float(r["time/elapsed_s"]) for r in read_csv(sweep / job(sweep, 0) / "metrics.csv")]
    assert list(axes.lines[0].get_xdata()) == pytest.approx(elapsed) and elapsed == sorted(elapsed)


def test_the_leaderboard_fits_an_80_column_terminal_without_cutting_a_header():
    from rich.console import Console

    from cnnbench.results.leaderboard import render

    rows = [{"run": f"{i}_lr-0.01235_weight_decay-1.235e-05_batch_size-128", "optimizer.lr": "0.01235",
             "optimizer.weight_decay": "1.235e-05", "data.batch_size": "128", "status": "completed",
             "val/acc_best": 0.9 - i / 100, "test/acc": 0.91 - i / 100, "epochs_run": 30, "params": 11_172_810,
             "throughput/train_examples_per_s": 3012.5, "time/wall_s": 1234.5} for i in range(3)]
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(render(rows, "test/acc", width=80))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")][:5] == ["run", "lr", "weight_decay", "batch_size",
                                                                          "status"]
    assert "test/acc" in header and "left out to fit: img/s" in text
    wide = Console(width=300, record=True, file=io.StringIO())
    wide.print(render(rows, "test/acc", width=300))
    wide_text = wide.export_text()
    assert "left out" not in wide_text and "img/s" in wide_text


def test_a_report_over_mixed_runs_groups_them_by_dataset_without_a_warning(tmp_path):
    import warnings

    from PIL import Image

    from tests.conftest import TINY_RUN, main_in_process

    runs = tmp_path / "runs"
    digits = ["model=lenet5", "data=digits", "trainer.device=cpu"]
    for name, args in (("a", digits), ("b", [*digits, "model=mlp"]), ("c", TINY_RUN), ("d", [*digits, "seed=1"])):
        assert main_in_process(*args, "trainer.epochs=1", "trainer.max_steps_per_epoch=2", "console.config=none",
                               f"hydra.run.dir={runs / name}") == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([str(runs)]) == 0
    assert [str(w.message) for w in caught] == []
    rows = read_csv(runs / "leaderboard.csv")
    datasets = [row["data"] for row in rows]
    assert datasets == sorted(datasets, key=datasets.index) and set(datasets) == {"digits", "synthetic"}  # grouped
    with Image.open(runs / "leaderboard.png") as image:
        assert image.height >= 2 * 4.5 * 120 - 1  # one row of panels per dataset
    assert main([str(runs), "report.group_seeds=true", f"report.out={tmp_path / 'grouped'}"]) == 0
    labels = [row["run"] for row in read_csv(tmp_path / "grouped" / "leaderboard.csv")]
    assert "seeds 0,1" in labels and not any("," in label and "_" in label for label in labels)


def test_tensorboard_over_several_sweeps_has_a_column_for_every_key_any_of_them_varied(tmp_path):
    from tests.conftest import TINY_RUN, main_in_process

    multiruns = tmp_path / "multiruns"
    for name, swept in (("lrs", "optimizer.lr=0.05,0.1"), ("batches", "data.batch_size=32,64")):
        assert main_in_process("-m", *TINY_RUN, "trainer.epochs=1", "trainer.max_steps_per_epoch=2",
                               "console.config=none", swept, f"hydra.sweep.dir={multiruns / name}") == 0
    assert main_in_process(*TINY_RUN, "trainer.epochs=1", "trainer.max_steps_per_epoch=2", "seed=3",
                           "console.config=none", f"hydra.run.dir={tmp_path / 'single'}") == 0
    over_sweeps = tb_experiment(multiruns)
    assert {"optimizer.lr", "data.batch_size"} <= set(over_sweeps.differing) <= set(over_sweeps.columns)
    assert {"test/acc", "val/acc_best", "val/acc"} <= set(over_sweeps.metrics)
    everything = tb_experiment(tmp_path)  # the sweeps beside a single run
    assert {"optimizer.lr", "data.batch_size", "seed"} <= set(everything.differing)
