"""A file is written whole or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.whole_file import write_whole


def test_the_chunks_are_the_file_in_order(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "plan.json"
    write_whole(path, [b"{", memoryview(b'"a"'), bytearray(b":1}")])
    assert path.read_bytes() == b'{"a":1}'
    assert sorted(p.name for p in path.parent.iterdir()) == ["plan.json"]


def test_a_failure_half_way_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_bytes(b"the report as it was")

    def chunks() -> Iterator[bytes]:
        yield b"half of a new "
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_whole(path, chunks())
    assert path.read_bytes() == b"the report as it was"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
