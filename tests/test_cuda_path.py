"""The CUDA path's decisions, checked on the CPU: one batch shape when compiling, the run's own random streams on
resume, the optimizer's implementation kept, gradients cleared before the forward, the GPU-only refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import cnnbench.config as config_module
from cnnbench.config import nondeterministic_on_cuda, validate_config
from cnnbench.data.loader import DeviceLoader
from cnnbench.data.sources import ImageSet
from cnnbench.data.transforms import BatchTransform
from cnnbench.engine import loop
from cnnbench.engine.checkpoint import load_optimizer_state, rng_state, set_rng_state
from cnnbench.engine.setup import TrainSetup
from cnnbench.errors import CnnbenchError, ConfigError
from cnnbench.models import create_model
from cnnbench.runtime.distributed import ONE_PROCESS
from cnnbench.train import build
from tests.conftest import TINY_RUN


def loader(count: int, batch: int, device: str = "cpu") -> DeviceLoader:
    images = ImageSet(torch.zeros(count, 1, 4, 4, dtype=torch.uint8), torch.zeros(count, dtype=torch.int64))
    generator = torch.Generator(device=device).manual_seed(0)
    return DeviceLoader(images, batch, BatchTransform(mean=[0.5], std=[0.5]), torch.device(device), shuffle=True,
                        generator=generator)


def test_a_compiled_run_trains_on_full_batches_only(make_cfg):
    """54,000 % 256 = 240: a last, smaller batch would make torch.compile compile the model again for its shape."""
    _, data = build(make_cfg([*TINY_RUN, "trainer.compile=true"]), ONE_PROCESS, torch.device("cpu"), 2)
    assert data.train.drop_last and len(data.train) == 360 // 64  # 360 training images: 5 full batches of 64
    assert [len(labels) for _, labels in data.train] == [64] * 5
    eager = build(make_cfg(TINY_RUN), ONE_PROCESS, torch.device("cpu"), 2)[1]
    assert not eager.train.drop_last and [len(labels) for _, labels in eager.train][-1] == 360 - 5 * 64


def test_drop_last_leaves_a_set_smaller_than_one_batch_whole():
    small = loader(40, 64)
    small.drop_last = True
    assert [len(labels) for _, labels in small] == [40]


def test_the_saved_random_state_names_its_device_and_is_refused_on_another():
    cpu_loader = loader(8, 4)
    state = rng_state(cpu_loader)
    assert state["device"] == "cpu" and "cuda" not in state and "cuda_device" not in state
    set_rng_state(state, cpu_loader)  # the same device: accepted
    with pytest.raises(CnnbenchError, match="written by a run on cuda .* continue it with trainer.device=cuda"):
        set_rng_state({**state, "device": "cuda"}, cpu_loader, "run/checkpoints/last.pt")
    older = {key: value for key, value in state.items() if key != "device"}
    with pytest.raises(CnnbenchError, match="on cuda"):  # a file from before: one CUDA state per visible GPU
        set_rng_state({**older, "cuda": [torch.zeros(16, dtype=torch.uint8)] * 2}, cpu_loader)


def test_resuming_keeps_the_optimizer_implementation_this_run_chose():
    weights = [nn.Parameter(torch.ones(3))]
    saved = torch.optim.SGD(weights, lr=0.1, momentum=0.9, foreach=True)
    weights[0].grad = torch.ones(3)
    saved.step()
    fresh = torch.optim.SGD(weights, lr=0.1, momentum=0.9, foreach=False)
    load_optimizer_state(fresh, saved.state_dict())
    assert fresh.param_groups[0]["foreach"] is False  # load_state_dict alone would have taken True from the file
    assert torch.equal(fresh.state[weights[0]]["momentum_buffer"], saved.state[weights[0]]["momentum_buffer"])


def test_gradients_are_cleared_before_the_forward_and_cuda_graph_steps_are_marked(monkeypatch):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    setup = TrainSetup(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), cudagraphs=True)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    seen = []
    model.register_forward_pre_hook(lambda *_: seen.append([p.grad for p in model.parameters()]))
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    loop.training_step(setup, torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.int64))
    assert seen == [[None, None]] and marks == [1]


def test_layers_without_a_deterministic_cuda_backward_are_found():
    with torch.device("meta"):
        assert nondeterministic_on_cuda(create_model("alexnet_small")) == ["classifier.0 = AdaptiveAvgPool2d((4, 4))"]
        assert nondeterministic_on_cuda(create_model("resnet18")) == []  # to 1x1: a mean


@pytest.mark.parametrize(("overrides", "message"), [
    (["model=alexnet_small", "trainer.deterministic=true"],
     "trainer.deterministic=true is not allowed with model=alexnet_small on CUDA: its classifier.0 = "
     "AdaptiveAvgPool2d((4, 4)) has no deterministic CUDA backward"),
    (["trainer.devices=2"], "trainer.device=cuda:1 is not allowed: expected cuda with several processes"),
])
def test_gpu_only_choices_are_refused_in_one_line(make_cfg, monkeypatch, overrides, message):
    monkeypatch.setattr(config_module, "resolve_device", lambda spec: torch.device("cuda:1"))
    monkeypatch.setattr(config_module.prepare, "resolve_device", lambda spec: torch.device("cuda:1"))
    with pytest.raises(ConfigError) as err:
        cfg = make_cfg([*TINY_RUN, "trainer.device=cuda:1", *overrides])
        validate_config(cfg)
        config_module.prepare_config(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize(("deterministic", "benchmark", "precision"), [(False, True, "high"), (True, False, "highest")])
def test_a_cuda_run_picks_its_gpu_and_sets_cudnn_and_tf32_once(monkeypatch, deterministic, benchmark, precision):
    from cnnbench.engine.setup import use_cuda

    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.get_float32_matmul_precision())
    try:
        use_cuda(torch.device("cuda:1"), deterministic)
        assert chosen == [torch.device("cuda:1")]  # pinned-memory threads and graph pools follow it, not cuda:0
        assert torch.backends.cudnn.benchmark is benchmark and torch.backends.cudnn.deterministic is deterministic
        assert torch.get_float32_matmul_precision() == precision  # TF32 for fp32 products unless deterministic
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[:2]
        torch.set_float32_matmul_precision(saved[2])
