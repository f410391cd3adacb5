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


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare text with tests/golden/NAME; UPDATE_GOLDEN=1 rewrites the file instead."""
    import os

    def check(name: str, text: str) -> None:
        path = REPO / "tests" / "golden" / name
        if os.environ.get("UPDATE_GOLDEN") == "1":
            path.write_text(text, encoding="utf-8")
        assert path.is_file(), f"no golden file {name}: run with UPDATE_GOLDEN=1"
        assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"

    return check
