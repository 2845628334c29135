"""Seed 001, section 8: why residual connections keep deep stacks trainable.

Fifty two-layer blocks (Linear(10,10)-ReLU-Linear(10,10)-ReLU) are stacked with and without a skip
connection (`block(x) + x`); a forward pass of one random input and a backward pass of `sum()` give the
gradient norm of the first block's first weight. Without the skip path the gradient all but vanishes.

    python scripts/gradient_norms.py [--blocks 50] [--seed 0]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, residual: bool, width: int = 10):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) + x if self.residual else self.layers(x)


def first_block_gradient_norm(residual: bool, num_blocks: int = 50) -> float:
    """The seed's measure_gradient_norm: ||d sum(output) / d W|| for the first Linear of the first block."""
    blocks = nn.ModuleList([Block(residual) for _ in range(num_blocks)])
    x = torch.randn(1, 10, requires_grad=True)
    for block in blocks:
        x = block(x)
    x.sum().backward()
    return blocks[0].layers[0].weight.grad.norm().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)  # as the seed: one manual_seed(0), then with, then without
    with_skip = first_block_gradient_norm(residual=True, num_blocks=args.blocks)
    without_skip = first_block_gradient_norm(residual=False, num_blocks=args.blocks)
    print(f"{args.blocks} blocks, gradient norm of the first block's first weight:")
    print(f"  with residual connections:    {with_skip:.6e}")
    print(f"  without residual connections: {without_skip:.6e}")
    if without_skip == 0:
        print("  without the skip path the gradient is exactly zero: somewhere in the stack every ReLU was inactive")
    else:
        print(f"  ratio: {with_skip / without_skip:.3g}x")


if __name__ == "__main__":
    main()
