"""What a plan remembers of its inputs, taken beside the caller's work."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from migrate.input_records import input_record, records_beside


def test_records_taken_beside_are_the_records_of_each_input(tmp_path: Path) -> None:
    paths = [tmp_path / "a.csv", tmp_path / "b.csv"]
    for index, path in enumerate(paths):
        path.write_bytes(b"x;y\r\n" * (index + 1))
    records = records_beside(paths).result(timeout=30)
    assert records == [input_record(path) for path in paths]
    assert records[1]["bytes"] == 10
    assert records[1]["sha256"] == hashlib.sha256(b"x;y\r\n" * 2).hexdigest()


def test_an_input_that_cannot_be_read_fails_whoever_asks_for_the_records(
    tmp_path: Path,
) -> None:
    records = records_beside([tmp_path / "missing.csv"])
    with pytest.raises(FileNotFoundError):
        records.result(timeout=30)
