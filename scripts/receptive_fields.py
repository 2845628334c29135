"""Seed 001, section 4: the receptive-field table of LeNet, and two 3x3 convs against one 5x5, through inspect.

The seed computes RF_new = RF_old + (k_eff - 1) * cumulative_stride by hand from a list of layers; here the
same numbers come from tracing the real modules with `cnnbench.inspect.inspect_model`.

    python scripts/receptive_fields.py [--model lenet] [--size 28]
"""

from __future__ import annotations

import argparse

import torch.nn as nn

from cnnbench.inspect import inspect_model
from cnnbench.models import create_model

SPATIAL_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def receptive_field_rows(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, str, int]]:
    """(layer name, type, receptive field) for every conv and pooling layer, in execution order."""
    report = inspect_model(model, input_shape)
    spatial = {name for name, module in model.named_modules() if isinstance(module, SPATIAL_LAYERS)}
    return [(layer["name"], layer["type"], layer["receptive_field"]) for layer in report["layers"]
            if layer["name"] in spatial]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet", help="a registry name (default: the d2l LeNet)")
    parser.add_argument("--size", type=int, default=28, help="input side length")
    args = parser.parse_args()

    model = create_model(args.model, in_chans=1, **({"input_size": args.size} if "lenet" in args.model else {}))
    print(f"{args.model}: receptive field of one output element, in input pixels (input 1x{args.size}x{args.size})")
    for name, kind, field in receptive_field_rows(model, (1, 1, args.size, args.size)):
        print(f"  after {name:<16} {kind:<10} {field:>4} x {field}")

    two_3x3 = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Conv2d(1, 1, 3))
    one_5x5 = nn.Sequential(nn.Conv2d(1, 1, 5))
    for label, stack in (("two 3x3 convs", two_3x3), ("one 5x5 conv", one_5x5)):
        rows = receptive_field_rows(stack, (1, 1, 16, 16))
        weights = sum(m.weight.numel() for m in stack if isinstance(m, nn.Conv2d))
        print(f"{label}: receptive field {rows[-1][2]} x {rows[-1][2]}, {weights} weights per channel pair")


if __name__ == "__main__":
    main()
