"""Shared fixtures: the bundled example extracts and a way to write small hostile ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
MAPPINGS = REPO / "mappings"


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


@pytest.fixture
def mappings_dir() -> Path:
    return MAPPINGS


@pytest.fixture
def write_text(tmp_path: Path) -> Callable[..., Path]:
    """Write lines as a file with the given encoding and line ending."""

    def write(name: str, lines: list[str], *, encoding: str = "utf-8", newline: str = "\n") -> Path:
        path = tmp_path / name
        path.write_bytes(newline.join(lines).encode(encoding) + newline.encode(encoding))
        return path

    return write
