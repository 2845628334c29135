"""The one override reader: Hydra's grammar for command lines, the plain split for what runs saved."""

from __future__ import annotations

import pytest

from cnnbench.errors import ConfigError
from cnnbench.runtime.overrides import (
    Override,
    command_line_overrides,
    parse_overrides,
    settings_of,
    single_value_sets,
)


def test_hydra_grammar_gives_keys_values_prefixes_and_sweeps():
    lr, model, extra, gone, search = parse_overrides(["optimizer.lr=0.01,0.1", "model=lenet", "+trainer.x=1",
                                                      "~data.mean", "optimizer.lr=tag(log, interval(0.1, 1))"])
    assert (lr.key, lr.sweep, lr.open_sweep) == ("optimizer.lr", ("0.01", "0.1"), False)
    assert (model.key, model.value, model.sweep) == ("model", "lenet", None)
    assert (extra.key, extra.prefix, extra.value) == ("trainer.x", "+", "1")
    assert gone.is_deletion and gone.value is None
    assert search.open_sweep and search.sweep is None


def test_a_line_hydra_cannot_read_is_one_line_naming_it():
    with pytest.raises(ConfigError) as err:
        parse_overrides(["trainer.epochs=="])
    assert "\n" not in str(err.value) and "trainer.epochs==" in str(err.value) and "override_grammar" in str(err.value)


def test_the_command_line_minus_flags_and_their_values():
    assert command_line_overrides(["-m", "a=1", "--cfg", "job", "-p", "trainer", "b=2"]) == ["a=1", "b=2"]
    assert command_line_overrides(["--config-name", "other", "a=1"]) is None  # another config: not checked


def test_settings_of_saved_lines_leave_out_hydra_and_deletions():
    lines = ["optimizer.lr=0.1", "+x=1", "++y=2", "~z", "hydra.run.dir=d", "hydra/launcher=joblib", "data.root=a=b"]
    assert settings_of(lines) == {"optimizer.lr": "0.1", "x": "1", "y": "2", "data.root": "a=b"}
    assert Override.from_text("hydra/launcher=joblib").is_hydra and not Override.from_text("model=x").is_hydra


def test_single_value_sets_try_every_value_once():
    sets = single_value_sets(parse_overrides(["a=1,2,3", "b=x,y", "hydra.sweep.dir=d", "c=interval(0, 1)"]))
    assert sets == [["a=1", "b=x"], ["a=2", "b=x"], ["a=3", "b=x"], ["a=1", "b=y"]]
