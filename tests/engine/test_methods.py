"""The training methods of the fast recipes, each against its definition: the moving average of the weights,
flip test-time augmentation, random erasing, mixup and cutmix, no weight decay on norms and biases, and the
time-to-target bookkeeping."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cnnbench.data.transforms import batch_mix, random_erasing
from cnnbench.engine import loop
from cnnbench.engine.checkpoint import load_checkpoint, restore
from cnnbench.engine.fit import FitSettings, fit
from cnnbench.engine.setup import moving_average, parameter_groups
from cnnbench.errors import Interrupted
from cnnbench.runtime.signals import StopFlag
from tests.engine.conftest import loader, setup
from tests.engine.test_fit import RecordingLogger, bundle


def test_the_moving_average_follows_its_formula_step_by_step():
    train_setup = setup()
    train_setup.ema = moving_average(train_setup.module, decay=0.9)
    expected = {}
    for images, labels in list(loader())[:3]:
        loop.training_step(train_setup, images, labels)
        for key, value in train_setup.module.state_dict().items():  # PyTorch's EMA: the first update copies
            expected[key] = 0.9 * expected[key] + 0.1 * value if key in expected else value.clone()
    for key, value in train_setup.ema.module.state_dict().items():
        assert torch.allclose(value, expected[key], atol=1e-6), key
    assert train_setup.evaluated is train_setup.ema.module


def test_best_pt_holds_the_moving_average_and_resume_continues_it(tmp_path):
    settings = FitSettings(epochs=2, checkpoints=tmp_path / "checkpoints", config={"model": {"name": "x"}})
    train_setup = setup()
    train_setup.ema = moving_average(train_setup.module, decay=0.8)
    fit(train_setup, bundle(), settings, RecordingLogger())
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    averaged = train_setup.ema.module.state_dict()
    if best["epoch"] == 2:
        assert all(torch.equal(best["model"][k], averaged[k]) for k in averaged)
    assert not all(torch.equal(best["model"][k], v) for k, v in train_setup.module.state_dict().items())
    again = setup(seed=7)
    again.ema = moving_average(again.module, decay=0.8)
    restore(tmp_path / "checkpoints" / "last.pt", again, loader(), None, "x")
    assert all(torch.equal(again.ema.module.state_dict()[k], v) for k, v in averaged.items())
    assert int(again.ema.n_averaged) == int(train_setup.ema.n_averaged) == 10


def test_flip_tta_averages_the_logits_of_an_image_and_its_mirror():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    images = torch.randn(5, 1, 4, 4)
    expected = (model(images) + model(images.flip(-1))) / 2
    assert torch.allclose(loop.predict(model, images, tta="flip"), expected)
    assert torch.equal(loop.predict(model, images), model(images))


def test_random_erasing_zeroes_one_rectangle_of_an_allowed_size_in_the_chosen_images():
    x = torch.ones(400, 1, 20, 20)
    erased = random_erasing(x, torch.Generator().manual_seed(0), p=0.5)
    zero = erased == 0
    chosen = zero.flatten(1).any(1)
    assert 0.4 < chosen.float().mean() < 0.6  # about half of the images
    fraction = zero.flatten(1).float().mean(1)[chosen]
    assert fraction.min() >= 0.015 and fraction.max() <= 0.34  # the area scale (0.02, 0.33), up to rounding
    for mask in zero[chosen][:20, 0]:  # each erased region is one filled rectangle
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        assert int(mask.sum()) == len(rows) * len(cols)
    assert torch.equal(random_erasing(x, torch.Generator(), p=0.0), x)


@pytest.mark.parametrize(("mixup", "cutmix"), [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_mixup_and_cutmix_mix_images_and_labels_by_the_same_share(mixup, cutmix):
    mix = batch_mix(mixup, cutmix, num_classes=4)
    images = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 1, 6, 6).contiguous()
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    torch.manual_seed(0)
    mixed, soft = mix(images, labels)
    assert soft.shape == (8, 4) and torch.allclose(soft.sum(1), torch.ones(8))
    partner = labels.roll(1)  # torchvision mixes each image with the one before it
    share = soft[torch.arange(8), labels]  # the image's own share of its label (the same for the whole batch)
    own = (mixed - images.roll(1, 0)) / (images - images.roll(1, 0))
    assert torch.allclose(own.mean((1, 2, 3)), share, atol=1e-5)  # pixels mixed by that share (cutmix: by area)
    assert torch.allclose(soft[torch.arange(8), partner] + share, torch.ones(8))
    assert batch_mix(0.0, 0.0, 4) is None


def test_norm_weights_and_biases_get_no_weight_decay_when_asked():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    model(torch.zeros(1, 1, 5, 5))
    decayed, free = parameter_groups(model, decay_norm_and_bias=False)
    assert {id(p) for p in decayed["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in free["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias),
                                                id(model[3].bias)}
    assert free["weight_decay"] == 0.0 and "weight_decay" not in decayed  # the optimizer's own value
    optimizer = torch.optim.SGD(parameter_groups(model, False), lr=0.1, weight_decay=1e-3)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [1e-3, 0.0]
    assert len(parameter_groups(model, decay_norm_and_bias=True)) == 6  # one group, as torch.optim makes it


REAL_EVALUATE = loop.evaluate


def scripted(monkeypatch, *values: float) -> None:
    accs = iter(values)
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: {**REAL_EVALUATE(*a, **k), "val/acc": next(accs)})


def test_the_target_is_the_first_epoch_that_reaches_it_with_its_time(tmp_path, monkeypatch):
    scripted(monkeypatch, 0.5, 0.91, 0.95, 0.96)
    logger = RecordingLogger()
    settings = FitSettings(epochs=4, checkpoints=tmp_path / "c", config={}, target_acc=0.9)
    result = fit(setup(), bundle(), settings, logger)
    assert result["epoch_at_target"] == 2 and result["epochs_run"] == 4
    elapsed = [metrics["time/elapsed_s"] for _, metrics, _ in logger.epochs]
    assert result["time/to_target_s"] == elapsed[1] and elapsed == sorted(elapsed)
    assert logger.tests == [(2, {"time/to_target_s": elapsed[1]})]  # TensorBoard gets it at its epoch


def test_stop_at_target_ends_the_run_there_and_a_missed_target_stays_null(tmp_path, monkeypatch):
    scripted(monkeypatch, 0.5, 0.91, 0.95)
    settings = FitSettings(epochs=3, checkpoints=tmp_path / "a", config={}, target_acc=0.9, stop_at_target=True)
    result = fit(setup(), bundle(), settings, RecordingLogger())
    assert result["epochs_run"] == 2 and result["stopped_early"] and result["epoch_at_target"] == 2
    scripted(monkeypatch, 0.5, 0.6)
    missed = fit(setup(), bundle(), FitSettings(epochs=2, checkpoints=tmp_path / "b", config={}, target_acc=0.99),
                 RecordingLogger())
    assert missed["epoch_at_target"] is None and missed["time/to_target_s"] is None


def test_a_run_resumed_across_its_target_epoch_counts_the_time_of_both_sessions(tmp_path, monkeypatch):
    scripted(monkeypatch, 0.5, 0.95)
    stop, real_step, calls = StopFlag(), loop.training_step, {"n": 0}

    def stop_in_epoch_2(*args):
        calls["n"] += 1
        if calls["n"] == 7:
            stop.signal_name = "SIGINT"
        return real_step(*args)

    monkeypatch.setattr(loop, "training_step", stop_in_epoch_2)
    settings = FitSettings(epochs=2, checkpoints=tmp_path / "c", config={"model": {"name": "x"}}, target_acc=0.9)
    with pytest.raises(Interrupted):
        fit(setup(), bundle(), settings, RecordingLogger(), stop=stop)
    monkeypatch.setattr(loop, "training_step", real_step)
    resumed_setup, data = setup(), bundle()
    state = restore(tmp_path / "c" / "last.pt", resumed_setup, data.train, None, "x")
    first_session = state.elapsed_s
    assert first_session > 0 and state.epoch_at_target is None
    result = fit(resumed_setup, data, settings, RecordingLogger(), state)
    assert result["epoch_at_target"] == 2 and result["time/to_target_s"] > first_session
