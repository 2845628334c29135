"""The model made ready for training: memory format, data parallelism, torch.compile, the optimizer, autocast."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..runtime.distributed import Ranks


@dataclass
class TrainSetup:
    """What a training step needs besides the data."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    scheduler: object = None  # an LRScheduler stepped once per optimizer step
    grad_clip: float | None = None
    amp: bool = False  # bf16 autocast for forward passes (trainer.amp)
    ema: AveragedModel | None = None  # an exponential moving average of the weights (trainer.ema_decay)
    tta: str = "none"  # test-time augmentation of validation and test (trainer.tta)
    mix: Callable | None = None  # mixup / cutmix of each training batch (data.mixup_alpha, data.cutmix_alpha)
    cudagraphs: bool = False  # trainer.compile=reduce-overhead on CUDA: each step is marked for CUDA graphs

    @property
    def module(self) -> nn.Module:
        """The model itself, unwrapped from torch.compile and DistributedDataParallel: what last.pt holds."""
        model = getattr(self.model, "_orig_mod", self.model)
        return getattr(model, "module", model)

    @property
    def evaluated(self) -> nn.Module:
        """The weights that are validated, kept in best.pt and tested: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.module

    def autocast(self):
        device_type = next(self.model.parameters()).device.type
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.amp)


@dataclass(frozen=True)
class SetupSettings:
    """The trainer.* settings that shape the setup (see conf/config.yaml)."""

    channels_last: bool = True
    compile: bool | str = False
    sync_bn: bool = False
    amp: bool | str = "auto"
    grad_clip: float | None = None
    label_smoothing: float = 0.0
    deterministic: bool = False  # trainer.deterministic: no cuDNN benchmarking either
    ema_decay: float | None = None
    tta: str = "none"
    decay_norm_and_bias: bool = True  # trainer.decay_norm_and_bias: weight decay on norm weights and biases too


def build_setup(model: nn.Module, make_optimizer: Callable[..., torch.optim.Optimizer],
                make_scheduler: Callable[..., object], settings: SetupSettings, device: torch.device, ranks: Ranks,
                steps_per_epoch: int, epochs: int, mix: Callable | None = None) -> TrainSetup:
    """Move `model` to `device` and wrap it; `make_optimizer(params)` and `make_scheduler(optimizer, total_steps=,
    steps_per_epoch=)` are the configured factories, completed here."""
    model = model.to(device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)  # convolutions then produce NHWC activations
    module = model
    model = compiled(data_parallel(model, device, ranks, settings.sync_bn), settings.compile)
    optimizer = fused_if_possible(make_optimizer, parameter_groups(module, settings.decay_norm_and_bias), device)
    scheduler = make_scheduler(optimizer, total_steps=steps_per_epoch * epochs, steps_per_epoch=steps_per_epoch)
    if device.type == "cuda":
        use_cuda(device, settings.deterministic)
    ema = moving_average(module, settings.ema_decay) if settings.ema_decay else None
    return TrainSetup(model, optimizer, nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing), scheduler,
                      settings.grad_clip, amp=use_amp(settings.amp, device), ema=ema, tta=settings.tta, mix=mix,
                      cudagraphs=device.type == "cuda" and settings.compile == "reduce-overhead")


def use_cuda(device: torch.device, deterministic: bool) -> None:
    """This process's GPU (pinned-memory threads, graph pools and stray allocations follow it), cuDNN's kernel
    choice, and TF32 for the fp32 matrix products (trainer.amp=false); a deterministic run keeps exact fp32 and
    cuDNN's deterministic kernels."""
    torch.cuda.set_device(device)
    torch.backends.cudnn.benchmark = cudnn_benchmark(device, deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.set_float32_matmul_precision("highest" if deterministic else "high")


def moving_average(module: nn.Module, decay: float) -> AveragedModel:
    """PyTorch's own exponential moving average of the weights and the buffers (BatchNorm statistics too):
    ema = decay * ema + (1 - decay) * weights, after every optimizer step."""
    return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def parameter_groups(module: nn.Module, decay_norm_and_bias: bool) -> list[dict] | list[nn.Parameter]:
    """All parameters, or (timm's and torchvision's references) two groups: the weights of convolutions and linear
    layers, which take the weight decay, and the norm layers' weights and every bias (1-d tensors), which do not."""
    parameters = [p for p in module.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return parameters
    return [{"params": [p for p in parameters if p.ndim > 1]},
            {"params": [p for p in parameters if p.ndim <= 1], "weight_decay": 0.0}]


def cudnn_benchmark(device: torch.device, deterministic: bool) -> bool:
    """Whether cuDNN may time its kernels once and keep the fastest (the input shapes are fixed): a choice that
    varies from run to run, so a deterministic run (PyTorch's reproducibility notes) does not make it."""
    return device.type == "cuda" and not deterministic


def compiled(model: nn.Module, setting: bool | str) -> nn.Module:
    """`trainer.compile`: false, true (torch.compile's default mode), or a mode such as reduce-overhead."""
    if setting is False:
        return model
    return torch.compile(model, mode=None if setting is True else setting)


def data_parallel(model: nn.Module, device: torch.device, ranks: Ranks, sync_bn: bool) -> nn.Module:
    """The model wrapped in DistributedDataParallel when there are several ranks (gradients all-reduced)."""
    if ranks.world_size == 1:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def use_amp(setting: bool | str, device: torch.device) -> bool:
    """`trainer.amp`: auto = bf16 autocast on CUDA only; true/false force it (bf16 autocast works on CPUs too)."""
    return device.type == "cuda" if setting == "auto" else bool(setting)


def fused_if_possible(make_optimizer: Callable[..., torch.optim.Optimizer], parameters,
                      device: torch.device) -> torch.optim.Optimizer:
    """The configured optimizer; on CUDA its fused implementation (one kernel for the whole update)."""
    target = getattr(make_optimizer, "func", make_optimizer)
    if device.type == "cuda" and "fused" in inspect.signature(target).parameters:
        return make_optimizer(parameters, fused=True)
    return make_optimizer(parameters)
