"""The seed studies in scripts/ run and print the seeds' numbers."""

from __future__ import annotations

import re
import runpy
import sys

import pytest

from tests.conftest import REPO


@pytest.fixture
def run_script(capsys, monkeypatch):
    """run_script(name, *args): what `python scripts/<name> ARGS` prints, run in this process."""

    def _run(name: str, *args: str) -> str:
        monkeypatch.setattr(sys, "argv", [name, *args])
        try:
            runpy.run_path(str(REPO / "scripts" / name), run_name="__main__")
        except SystemExit as exit_:
            assert exit_.code in (0, None), capsys.readouterr().err
        return capsys.readouterr().out

    return _run


def test_gradient_norms_vanish_without_residual_connections(run_script):
    out = run_script("gradient_norms.py")
    with_skip = float(re.search(r"with residual connections:\s+(\S+)", out).group(1))
    without_skip = float(re.search(r"without residual connections:\s+(\S+)", out).group(1))
    assert with_skip > 1.0 and without_skip < 1e-6


def test_receptive_field_table_matches_seed_001(run_script):
    out = run_script("receptive_fields.py")
    fields = [int(m) for m in re.findall(r"after \S+\s+\S+\s+(\d+) x", out)]
    assert fields == [5, 6, 14, 16]
    assert "two 3x3 convs: receptive field 5 x 5, 18 weights" in out
    assert "one 5x5 conv: receptive field 5 x 5, 25 weights" in out


def test_time_to_accuracy_reads_the_first_epoch_at_each_target_and_counts_who_reached_it():
    tta = runpy.run_path(str(REPO / "scripts" / "time_to_accuracy.py"))
    curve = [(20.0, 0.85), (40.0, 0.905), (60.0, 0.912), (80.0, 0.909)]
    assert [tta["time_to"](curve, t) for t in (0.90, 0.91, 0.92)] == [40.0, 60.0, None]
    runs = [{"way": "a", "curve": curve, "test_acc": 0.91, "wall_s": 90.0},
            {"way": "a", "curve": [(30.0, 0.91)], "test_acc": 0.92, "wall_s": 100.0}]
    row = tta["summarise"](runs, [0.91, 0.92])["a"]
    assert row["to_0.91"] == {"mean": 45.0, "std": pytest.approx(21.2132, abs=1e-4), "reached": "2/2"}
    assert row["to_0.92"]["mean"] is None and tta["show"](row["to_0.92"], unit="s") == "never (0/2)"  # no unit
    assert tta["show"](row["to_0.91"], unit="s") == "45.0 ± 21.2s"
    assert row["test_acc"]["mean"] == pytest.approx(0.915) and row["wall_s"]["mean"] == 95.0
