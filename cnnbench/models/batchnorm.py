"""Seed 003's batch normalization written from scratch (d2l 7.5): a function and a module around it.

Differences from the seed, all in how the module keeps its state, none in the arithmetic:
- `moving_mean` / `moving_var` are registered buffers, so they are saved in `state_dict` and follow
  `.to(device)`; the seed keeps plain tensor attributes and moves them by hand in `forward`.
- Training vs inference is chosen by `module.train()` / `module.eval()`. The seed tests
  `torch.is_grad_enabled()`, which would normalize with batch statistics in an evaluation that runs
  with gradients on, and with the moving averages in a training step run under `no_grad`.
As in the seed, the moving variance is the biased batch variance and `momentum` weighs the old value:
`moving = momentum * moving + (1 - momentum) * batch` (PyTorch's `nn.BatchNorm` momentum 0.1 is the
same update written the other way round, but it keeps the unbiased variance).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def batch_norm(X: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, moving_mean: torch.Tensor,
               moving_var: torch.Tensor, eps: float, momentum: float, training: bool):
    """Normalize `X` (N, C) or (N, C, H, W) per channel; returns (Y, new moving_mean, new moving_var)."""
    if not training:
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
        return gamma * X_hat + beta, moving_mean, moving_var
    assert X.dim() in (2, 4)
    dims = (0,) if X.dim() == 2 else (0, 2, 3)
    mean = X.mean(dim=dims, keepdim=True)
    var = ((X - mean) ** 2).mean(dim=dims, keepdim=True)
    X_hat = (X - mean) / torch.sqrt(var + eps)
    moving_mean = momentum * moving_mean + (1.0 - momentum) * mean.detach()
    moving_var = momentum * moving_var + (1.0 - momentum) * var.detach()
    return gamma * X_hat + beta, moving_mean, moving_var


class BatchNorm(nn.Module):
    """Seed 003's `BatchNorm(num_features, num_dims)`: num_dims 2 after a Linear, 4 after a Conv2d."""

    def __init__(self, num_features: int, num_dims: int, eps: float = 1e-5, momentum: float = 0.9):
        super().__init__()
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.eps = eps
        self.momentum = momentum
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.register_buffer("moving_mean", torch.zeros(shape))
        self.register_buffer("moving_var", torch.ones(shape))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y, moving_mean, moving_var = batch_norm(X, self.gamma, self.beta, self.moving_mean, self.moving_var,
                                                self.eps, self.momentum, self.training)
        if self.training:
            self.moving_mean.copy_(moving_mean)
            self.moving_var.copy_(moving_var)
        return Y

    def extra_repr(self) -> str:
        return f"{self.gamma.shape[1]}, eps={self.eps}, momentum={self.momentum}"
