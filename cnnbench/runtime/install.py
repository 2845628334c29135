"""Whether the installed torch and torchvision can work together, read from their package metadata (milliseconds:
nothing is imported). A pair from different releases or builds (a CPU-only torch beside a CUDA torchvision) fails
later with `operator torchvision::nms does not exist`; here it is one line naming both and the command that fixes it.
"""

from __future__ import annotations

import re
from importlib import metadata

PYTORCH_INDEX = "https://download.pytorch.org/whl"
MISSING_OPERATOR = "operator torchvision::"  # how a broken pair shows itself when torchvision is imported


def installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def install_problem() -> str | None:
    """One line when torch and torchvision do not make a working pair, else None."""
    torch_version, vision_version = installed("torch"), installed("torchvision")
    if torch_version is None:
        return None  # nothing could run; Python's own ImportError says so
    if vision_version is None:
        return f"torchvision is not installed beside torch {torch_version}; install it: {fix_command(torch_version)}"
    expected = matching_vision(torch_version)
    release = _release(vision_version)
    builds = _build(torch_version), _build(vision_version)
    if expected is not None and release is not None and release != expected:
        why = f"torchvision {vision_version} belongs to torch 2.{release[1] - 15}, not torch {torch_version}"
    elif builds[0] != builds[1]:
        why = (f"torch {torch_version} is a {_build_name(builds[0])} build and torchvision {vision_version} a "
               f"{_build_name(builds[1])} one")
    else:
        return None
    return f"{why}: the two cannot work together; install the torchvision of this torch: {fix_command(torch_version)}"


def broken_pair_message(reason: str) -> str:
    """The line for the error a broken pair raises on import (when the metadata did not give it away)."""
    torch_version, vision_version = installed("torch") or "?", installed("torchvision") or "?"
    return (f"torch {torch_version} and torchvision {vision_version} cannot work together ({reason[:120]}); install "
            f"the torchvision of this torch: {fix_command(torch_version)}")


def matching_vision(torch_version: str) -> tuple[int, int] | None:
    """torch 2.N pairs with torchvision 0.(N + 15) (2.14 with 0.29)."""
    release = _release(torch_version)
    return (0, release[1] + 15) if release is not None and release[0] == 2 else None


def fix_command(torch_version: str) -> str:
    wanted = matching_vision(torch_version)
    pin = f'"torchvision=={wanted[0]}.{wanted[1]}.*"' if wanted else "torchvision"
    build = _build(torch_version)
    index = f" --index-url {PYTORCH_INDEX}/{build}" if build else ""
    return f"pip install --force-reinstall --no-deps {pin}{index}"


def _release(version: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


def _build(version: str) -> str:
    """The local build tag: `cpu`, `cu121`, `rocm6.2`; "" for PyPI's default build."""
    return version.partition("+")[2]


def _build_name(build: str) -> str:
    return {"": "default (PyPI)", "cpu": "CPU-only"}.get(build, build)
