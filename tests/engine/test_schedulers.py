"""The learning-rate curves of every schedule, step by step: warmup, cosine floor, step decay, one-cycle."""

from __future__ import annotations

import math

import pytest
import torch

from cnnbench.engine import schedulers

LR = 0.1


def curve(schedule, total_steps: int, steps_per_epoch: int, **options) -> list[float]:
    """The learning rate of each of `total_steps` optimizer steps, as the training loop sees it."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    scheduler = schedule(optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch, **options)
    lrs = []
    for _ in range(total_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_constant_with_a_linear_warmup():
    lrs = curve(schedulers.constant, 20, 5, warmup_epochs=1)
    assert lrs[:5] == pytest.approx([LR * k / 5 for k in range(1, 6)])  # 1/5, 2/5, ... of the lr
    assert lrs[5:] == pytest.approx([LR] * 15)


def test_cosine_falls_from_the_lr_to_its_floor_after_the_warmup():
    lrs = curve(schedulers.cosine, 100, 10, warmup_epochs=1, min_lr=0.001)
    assert lrs[9] == pytest.approx(LR)  # the last warmup step reaches the lr
    after = lrs[10:]
    assert after[0] == pytest.approx(LR)
    assert all(a >= b for a, b in zip(after, after[1:], strict=False))  # never rises again
    span = 90
    for step in (0, 30, 45, 89):
        expected = 0.001 + (LR - 0.001) * 0.5 * (1 + math.cos(math.pi * step / span))
        assert after[step] == pytest.approx(expected)
    assert min(lrs) >= 0.001 and after[45] == pytest.approx((LR + 0.001) / 2)  # half-way: the mean


def test_cosine_without_warmup_starts_at_the_lr_and_ends_near_the_floor():
    lrs = curve(schedulers.cosine, 50, 10, min_lr=0.0)
    assert lrs[0] == LR and lrs[-1] == pytest.approx(LR * 0.5 * (1 + math.cos(math.pi * 49 / 50)))


def test_step_decay_is_constant_within_each_epoch_and_multiplies_by_gamma():
    lrs = curve(schedulers.step, 40, 4, step_epochs=3, gamma=0.5)
    by_epoch = [lrs[e * 4:(e + 1) * 4] for e in range(10)]
    assert all(len(set(epoch)) == 1 for epoch in by_epoch)  # piecewise constant per epoch, as StepLR per epoch
    assert [epoch[0] for epoch in by_epoch] == pytest.approx([LR] * 3 + [LR / 2] * 3 + [LR / 4] * 3 + [LR / 8])


def test_step_decay_counts_epochs_from_the_start_of_training_warmup_included():
    lrs = curve(schedulers.step, 40, 4, step_epochs=3, gamma=0.5, warmup_epochs=1)
    assert lrs[:4] == pytest.approx([LR / 4, LR / 2, 3 * LR / 4, LR])
    assert lrs[4] == pytest.approx(LR) and lrs[12] == pytest.approx(LR / 2)  # epoch 4 starts the first decay


def test_onecycle_rises_to_the_lr_then_anneals_far_below_it():
    lrs = curve(schedulers.onecycle, 100, 10, pct_start=0.3, div_factor=25, final_div_factor=1e4)
    peak = lrs.index(max(lrs))
    assert lrs[0] == pytest.approx(LR / 25)
    assert max(lrs) == pytest.approx(LR, rel=1e-3) and 28 <= peak <= 30
    assert lrs[-1] < LR / 25 / 1e3  # ends at lr / (div_factor * final_div_factor), to within a step


def test_onecycle_warmup_epochs_set_the_rising_phase():
    lrs = curve(schedulers.onecycle, 100, 10, warmup_epochs=5)
    assert lrs.index(max(lrs)) in (49, 50)


def test_every_schedule_of_conf_scheduler_points_at_a_function_here():
    from pathlib import Path

    from omegaconf import OmegaConf

    from cnnbench import CONF_DIR

    targets = [OmegaConf.load(path)._target_ for path in sorted(Path(CONF_DIR, "scheduler").glob("*.yaml"))]
    assert targets and all(getattr(schedulers, t.rsplit(".", 1)[1]) for t in targets)
    assert all(t.startswith("cnnbench.engine.schedulers.") for t in targets)
