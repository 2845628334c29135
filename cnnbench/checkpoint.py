"""Checkpoints as plain dicts (loadable with weights_only=True), written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import CnnbenchError

FORMAT_VERSION = 1


def atomic_write(path: Path, write) -> None:
    """Write through `write(tmp_path)` into a temporary file beside `path`, then rename over it.

    A crash mid-write leaves the previous file intact: the rename is atomic on POSIX and Windows.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_json(path: Path, payload: dict[str, Any]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")

    atomic_write(path, write)


def save_checkpoint(path: Path, **state: Any) -> None:
    """Save a dict of plain state (state_dicts, numbers, tensors, containers) with a format version."""
    payload = {"format_version": FORMAT_VERSION, "cnnbench_version": __version__, **state}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by save_checkpoint; anything else is a one-line CnnbenchError."""
    path = Path(path)
    if not path.is_file():
        raise CnnbenchError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CnnbenchError(f"checkpoint {path} cannot be read ({type(err).__name__}): truncated or not a "
                            "cnnbench checkpoint") from err
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CnnbenchError(f"checkpoint {path} is not a cnnbench checkpoint (no format_version)")
    if payload["format_version"] != FORMAT_VERSION:
        raise CnnbenchError(f"checkpoint {path} has format version {payload['format_version']}, "
                            f"this cnnbench reads version {FORMAT_VERSION}")
    return payload
