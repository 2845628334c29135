"""The `estimate:` line: the whole plan's time from the first timed steps, said once, only when it is long; on a CPU
and over an hour, what would make it shorter."""

from __future__ import annotations

import pytest

from cnnbench.engine import estimate
from cnnbench.engine.estimate import Plan, PlanEstimate
from tests.conftest import TINY_RUN


def fed(plan: Plan, step_s: float, steps: int = 30) -> list[str]:
    said, now = [], [100.0]
    watch = PlanEstimate(plan, said.append, clock=lambda: now[0])
    for step in range(1, steps + 1):
        now[0] += step_s if step > 1 else 7.0  # the first step: warm-up, left out
        watch.step(step)
    return said


def test_the_main_job_on_a_cpu_is_announced_with_its_hours_and_what_would_shorten_it():
    # ResNet-18 on Fashion-MNIST as measured on a 2-core CPU: 77 images/s, 211 steps of 256
    plan = Plan(epochs=30, steps_per_epoch=211, batch_size=256, eval_images=6000, test_images=10000, device="cpu",
                dataset="fashion_mnist")
    said = fed(plan, step_s=256 / 77)
    assert len(said) == 1
    line = said[0]
    assert line.startswith("estimate: the whole plan (30 epochs of 211 steps, validation and the test) takes about ")
    hours = 30 * (211 * 256 / 77 + 6000 / 77 / 3) + 10000 / 77 / 3
    assert f"about {int(hours // 3600)}h" in line and "at 77 images/s (timed over 2 steps)" in line  # 5 s of steps
    assert "trainer.device=cuda" in line and "experiment=fmnist_fast_cpu" in line


def test_a_short_plan_says_nothing_and_a_long_gpu_plan_names_no_preset():
    short = Plan(epochs=2, steps_per_epoch=10, batch_size=64, eval_images=100, test_images=100, device="cpu",
                 dataset="digits")
    assert fed(short, step_s=0.01) == []
    gpu = Plan(epochs=100, steps_per_epoch=500, batch_size=256, eval_images=10000, test_images=10000, device="cuda",
               dataset="cifar10")
    said = fed(gpu, step_s=0.05)
    assert len(said) == 1 and "on cuda" in said[0] and "trainer.device" not in said[0]


def test_a_run_prints_the_estimate_once_between_its_header_and_its_rows(cli_main, tmp_path, monkeypatch):
    monkeypatch.setattr(estimate, "LONG_PLAN_S", 0.0)
    result = cli_main(*TINY_RUN, "console.config=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    estimates = [i for i, line in enumerate(lines) if line.startswith("estimate: ")]
    assert len(estimates) == 1
    header = next(i for i, line in enumerate(lines) if line.startswith("lenet5 on synthetic"))
    first_row = next(i for i, line in enumerate(lines) if line.split()[:1] == ["1"])
    assert header < estimates[0] < first_row
    assert "(2 epochs of 6 steps, validation and the test)" in lines[estimates[0]]


@pytest.mark.parametrize(("seconds", "shown"), [(42, "42s"), (200, "3m20s"), (22000, "6h06m")])
def test_durations_read_as_people_say_them(seconds, shown):
    assert estimate.shown_duration(seconds) == shown
