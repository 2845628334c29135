"""The devices this machine has, and the one `trainer.device` names."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def available_devices() -> list[str]:
    devices = ["auto", "cpu"]
    devices += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))] if torch.cuda.is_available() else []
    return devices + (["mps"] if torch.backends.mps.is_available() else [])


def resolve_device(spec: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; an explicit device must exist on this machine."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec not in available_devices():
        count = torch.cuda.device_count()
        reason = ("MPS is not available" if spec == "mps" else f"this machine has {count} CUDA device(s)" if count
                  else "CUDA is not available")
        raise ConfigError(f"trainer.device={spec} is not allowed: expected one of {', '.join(available_devices())} "
                          f"({reason} here)")
    return torch.device(spec)
