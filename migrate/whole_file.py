"""Files written whole or not at all: a half-written plan, report or rule file would be read as
the real one. Written under a dot-name beside the file, then renamed into place; a failure
on the way leaves neither."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12


def write_whole(path: Path, chunks: Iterable[Buffer]) -> None:
    """`path` holds the chunks, in order, once this returns; if it raises, `path` is as it
    was and no temporary file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    try:
        with scratch.open("wb") as handle:
            for chunk in chunks:
                handle.write(memoryview(chunk))
        scratch.replace(path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
