"""Checkpoints: plain dicts that load with weights_only=True, written atomically, refused in one line when foreign."""

from __future__ import annotations

import os

import pytest
import torch

from cnnbench.engine import loop
from cnnbench.engine.checkpoint import load_checkpoint, restore, save_checkpoint, save_last
from cnnbench.engine.state import EarlyStopping, FitState
from cnnbench.errors import CnnbenchError
from tests.engine.conftest import loader, setup


def test_a_checkpoint_round_trips_and_loads_with_weights_only(tmp_path):
    model = setup().model
    save_checkpoint(tmp_path / "best.pt", epoch=3, model=model.state_dict(), metrics={"val/acc": 0.5},
                    config={"model": {"name": "x"}})
    payload = torch.load(tmp_path / "best.pt", weights_only=True)
    assert payload["format_version"] == 1 and payload["epoch"] == 3 and payload["metrics"] == {"val/acc": 0.5}
    loaded = load_checkpoint(tmp_path / "best.pt")
    assert all(torch.equal(loaded["model"][k], v) for k, v in model.state_dict().items())
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary file left beside it


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "last.pt", epoch=1)
    before = (tmp_path / "last.pt").read_bytes()

    def disk_full(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "last.pt", epoch=2)
    assert (tmp_path / "last.pt").read_bytes() == before and os.listdir(tmp_path) == ["last.pt"]


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "does not exist"),
    ("truncated", "cannot be read (RuntimeError): truncated or not a cnnbench checkpoint"),
    ({"weights": torch.zeros(2)}, "is not a cnnbench checkpoint (no format_version)"),
    ({"format_version": 99}, "has format version 99, this cnnbench reads version 1"),
])
def test_anything_else_is_a_one_line_error_naming_the_file(tmp_path, content, fragment):
    path = tmp_path / "x.pt"
    if content == "truncated":
        save_checkpoint(path, epoch=1, model=setup().model.state_dict())
        path.write_bytes(path.read_bytes()[:300])
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CnnbenchError) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(f"checkpoint {path} ") and fragment in str(err.value)


def test_last_pt_restores_weights_optimizer_scheduler_early_stopping_and_the_random_streams(tmp_path):
    trained, train = setup(), loader()
    loop.train_one_epoch(trained, train)
    stopper = EarlyStopping(4)
    stopper.update(0.6, 1)
    save_last(tmp_path / "last.pt", trained, train, FitState(epoch=1, stopper=stopper), {"model": {"name": "x"}},
              schedule_epochs=3)
    next_order = train.draw_order()  # what the loader draws after the save

    fresh, fresh_loader = setup(seed=9), loader(seed=4)
    state = restore(tmp_path / "last.pt", fresh, fresh_loader, 4, "x")
    assert state.epoch == 1 and state.stopper.state_dict() == stopper.state_dict() and state.cursor is None
    assert all(torch.equal(a, b) for a, b in zip(trained.model.parameters(), fresh.model.parameters(), strict=True))
    assert fresh.optimizer.state_dict()["state"][0]["momentum_buffer"].equal(
        trained.optimizer.state_dict()["state"][0]["momentum_buffer"])
    assert fresh.scheduler.last_epoch == trained.scheduler.last_epoch == 5
    assert torch.equal(fresh_loader.draw_order(), next_order)


def test_restore_refuses_a_checkpoint_of_another_model(tmp_path):
    trained, train = setup(), loader()
    save_last(tmp_path / "last.pt", trained, train, FitState(), {"model": {"name": "lenet5"}}, schedule_epochs=3)
    with pytest.raises(CnnbenchError, match="written by a run of model lenet5; this run builds resnet18"):
        restore(tmp_path / "last.pt", setup(), loader(), None, "resnet18")
