"""Files a run writes and reads: each written whole or not at all."""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Write through `write(tmp_path)` into a temporary file beside `path`, then rename over it.

    As databases and package managers do: write, fsync the file, rename, fsync the directory. A crash or a
    power cut at any point leaves either the previous file or the new one, whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"))
    open(tmp, "x").close()  # claimed with the umask's permissions (mkstemp would make it private: 0600)
    try:
        write(tmp)
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _fsync(path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError:  # a filesystem that cannot sync a directory (some network mounts): the rename still holds
        pass
    finally:
        os.close(fd)


def save_json(path: Path, payload: dict[str, Any], in_place_when_full: bool = False) -> None:
    """`in_place_when_full`: on a full disk, where a second file cannot be made, overwrite the file itself (a
    small JSON fits in the blocks it frees), so that a summary can still say how the run ended."""
    text = json.dumps(payload, indent=2) + "\n"
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    except OSError as err:
        if not (in_place_when_full and err.errno in (errno.ENOSPC, errno.EDQUOT) and Path(path).is_file()):
            raise
        with open(path, "r+") as f:
            f.truncate(0)
            f.write(text)


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`; None when the file is missing, unreadable or holds something else."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None
