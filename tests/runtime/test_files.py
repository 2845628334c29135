"""Files written whole or not at all, with the permissions any other file of the user gets."""

from __future__ import annotations

import os

import pytest

from cnnbench.runtime.files import atomic_write, read_json, save_json


def test_a_json_file_round_trips_and_gets_the_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        save_json(tmp_path / "summary.json", {"status": "completed", "test/acc": 0.9})
    finally:
        os.umask(umask)
    assert read_json(tmp_path / "summary.json") == {"status": "completed", "test/acc": 0.9}
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644  # readable by TensorBoard, a report, a peer
    assert os.listdir(tmp_path) == ["summary.json"]


def test_a_write_that_fails_keeps_the_previous_file_and_leaves_no_temporary_one(tmp_path):
    save_json(tmp_path / "summary.json", {"status": "running"})

    def half_then_fail(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write('{"status": ')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(tmp_path / "summary.json", half_then_fail)
    assert read_json(tmp_path / "summary.json") == {"status": "running"} and os.listdir(tmp_path) == ["summary.json"]


@pytest.mark.parametrize("content", [None, "", "{half", "[1, 2]"])
def test_a_missing_half_or_foreign_file_reads_as_none(tmp_path, content):
    if content is not None:
        (tmp_path / "x.json").write_text(content)
    assert read_json(tmp_path / "x.json") is None
