"""`python -m cnnbench.inspect model=<name> data=<name>`: a model's layers as the seeds print them.

One forward pass of a zero image of the dataset's input shape (nothing is downloaded) lists every leaf
module in execution order with its output shape, parameters and receptive field, then the totals and
the forward FLOPs per image. `inspect.format=json` prints the same report as one JSON object.

Receptive field: the theoretical one, in input pixels, of one element of a layer's output. Each tensor
carries (size, jump): a conv/pool window of kernel k, dilation d, stride s maps it to
(size + (d*(k-1)) * jump, jump * s); every other operation passes on the largest field of its inputs,
so a residual add, an Inception concat or a dense concat report their widest branch. Once a tensor is
flattened it has no receptive field (null). It can exceed the image: padding counts.
"""

from __future__ import annotations

import json
import logging
import sys
import weakref
from dataclasses import dataclass

import hydra
import torch
import torch.nn as nn
from omegaconf import DictConfig
from rich import box
from rich.console import Console, Group
from rich.table import Table
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from . import CONF_DIR
from .config import build_model, prepare_config, validate_config
from .data import input_size
from .errors import announce, as_cnnbench_error
from .models.shapes import Window, effective_kernel_size, window_of

log = logging.getLogger(__name__)

ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class Field:
    size: int  # receptive field, in input pixels
    jump: int  # input pixels between two neighbouring output elements


def widen(field: Field, window: Window) -> Field:
    """The field after a conv/pool window: seed 001's RF_new = RF_old + (k_eff - 1) * jump."""
    k_eff = effective_kernel_size(window.kernel_size, window.dilation)
    return Field(field.size + (k_eff - 1) * field.jump, field.jump * window.stride)


def adaptive_window(in_size: int, out_size: int) -> Window:
    """The widest window an adaptive pool uses (its windows overlap when sizes do not divide)."""
    widest = max(-(-(i + 1) * in_size // out_size) - i * in_size // out_size for i in range(out_size))
    return Window(widest, max(in_size // out_size, 1), 0, 1)


def tensors_in(obj) -> list[torch.Tensor]:
    """The tensors in a nest of tuples, lists and dicts (the arguments or results of a torch call)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, list | tuple):
        return [t for item in obj for t in tensors_in(item)]
    if isinstance(obj, dict):
        return tensors_in(list(obj.values()))
    return []


class FieldTracker(TorchFunctionMode):
    """Sees every torch operation of a forward pass and records the receptive field of its outputs."""

    def __init__(self):
        super().__init__()
        self._fields: dict[int, tuple[weakref.ref, Field | None]] = {}

    def __contains__(self, tensor: torch.Tensor) -> bool:
        entry = self._fields.get(id(tensor))
        return entry is not None and entry[0]() is tensor  # a freed tensor's id may be reused

    def get(self, tensor: torch.Tensor) -> Field | None:
        return self._fields[id(tensor)][1] if tensor in self else None

    def set(self, tensor: torch.Tensor, field: Field | None) -> None:
        self._fields[id(tensor)] = (weakref.ref(tensor), field if tensor.dim() == 4 else None)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tracked = [t for t in tensors_in((args, kwargs)) if t in self]
        if tracked:
            fields = [f for t in tracked if (f := self.get(t)) is not None]
            widest = Field(max(f.size for f in fields), max(f.jump for f in fields)) if fields else None
            for t in tensors_in(out):
                self.set(t, widest)
        return out


def _window_field(module: nn.Module, field: Field, inp: torch.Tensor, out: torch.Tensor) -> Field:
    if isinstance(module, ADAPTIVE_POOLS):
        return widen(field, adaptive_window(inp.shape[-2], out.shape[-2]))
    return widen(field, window_of(module))


def trace_layers(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """Leaf-module calls in execution order; a module called twice is listed twice (params counted once)."""
    names = {module: name for name, module in model.named_modules()}
    tracker, layers, seen = FieldTracker(), [], set()

    def record(module: nn.Module, inputs: tuple, output) -> None:
        inp = inputs[0] if inputs else None
        out = tensors_in(output)[0]  # the first tensor, should a module return several
        field = tracker.get(inp) if isinstance(inp, torch.Tensor) else None
        if field is not None and (window_of(module) or isinstance(module, ADAPTIVE_POOLS)):
            tracker.set(out, _window_field(module, field, inp, out))
        first_call = module not in seen
        seen.add(module)
        layers.append({
            "name": names[module],
            "type": type(module).__name__,
            "output_shape": list(out.shape),
            "params": sum(p.numel() for p in module.parameters()) if first_call else 0,
            "receptive_field": out_field.size if (out_field := tracker.get(out)) else None,
        })

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad(), tracker:
            tracker.set(x, Field(1, 1))
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return layers


def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs of `model(x)`, a multiply-add counting 2, as FlopCounterMode reports them."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def inspect_model(model: nn.Module, input_shape: tuple[int, ...] | list[int], name: str | None = None) -> dict:
    """The JSON report: model, input_shape, params, flops (per image) and the layers, for a batch of one."""
    input_shape = [1, *input_shape[1:]]
    x = torch.zeros(input_shape)
    was_training = model.training
    model.eval()  # batch statistics of a single zero image mean nothing, and BatchNorm1d refuses them
    try:
        layers = trace_layers(model, x)
        flops = count_flops(model, x)
    finally:
        model.train(was_training)
    return {
        "model": name or type(model).__name__,
        "input_shape": input_shape,
        "params": sum(p.numel() for p in model.parameters()),
        "flops": flops,
        "layers": layers,
    }


def format_flops(flops: int) -> str:
    """Human-readable FLOPs: 12.88 KFLOPs, 0.83 MFLOPs, 1.23 GFLOPs."""
    for unit, scale, threshold in (("GFLOPs", 1e9, 1e9), ("MFLOPs", 1e6, 1e5), ("KFLOPs", 1e3, 0)):
        if flops >= threshold:
            return f"{flops / scale:.2f} {unit}"
    return f"{flops} FLOPs"


def render_table(report: dict) -> Group:
    """A rich table of the layers, then the totals."""
    table = Table(title=f"{report['model']} on {'x'.join(map(str, report['input_shape'][1:]))} inputs "
                        "(shapes per image)", box=box.SIMPLE_HEAD, pad_edge=False)
    longest = max((len(layer["name"]) for layer in report["layers"]), default=5)
    table.add_column("layer", overflow="fold", min_width=min(longest, 40))  # folds, never loses its end
    table.add_column("type", no_wrap=True)
    table.add_column("output", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("receptive field", justify="right", max_width=len("receptive"))  # the header in two lines
    for layer in report["layers"]:
        rf = layer["receptive_field"]
        shape = "x".join(map(str, layer["output_shape"][1:]))  # C x H x W, or features
        table.add_row(layer["name"], layer["type"], shape, f"{layer['params']:,}", "-" if rf is None else f"{rf}x{rf}")
    totals = Table.grid(padding=(0, 2))
    totals.add_row("total parameters", f"{report['params']:,}")
    totals.add_row("forward FLOPs per image", f"{format_flops(report['flops'])} ({report['flops']:,})")
    totals.add_row("input shape", str(report["input_shape"]))
    return Group(table, totals)


def run(cfg: DictConfig) -> dict:
    """Build `cfg.model` for `cfg.data`'s input, print its report in `cfg.inspect.format`, return the report."""
    validate_config(cfg, root="inspect")
    cfg = prepare_config(cfg, root="inspect")  # data=image_folder: channels and classes come from the folder
    size = input_size(cfg.data)
    model = build_model(cfg)
    report = inspect_model(model, (1, cfg.data.in_chans, size, size), name=cfg.model.name)
    if cfg.inspect.format == "json":
        print(json.dumps(report))
    else:
        Console().print(render_table(report))
    return report


@hydra.main(config_path=CONF_DIR, config_name="inspect", version_base=None)
def app(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except BaseException as err:  # any fault is one line
        sys.exit(announce(as_cnnbench_error(err), log))


def main(argv: list[str] | None = None) -> int:
    """`python -m cnnbench.inspect [overrides]`; the exit code."""
    from .cli import run_hydra_app

    return run_hydra_app(app, sys.argv[1:] if argv is None else list(argv), "inspect")


if __name__ == "__main__":
    sys.exit(main())
