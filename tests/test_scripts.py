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
