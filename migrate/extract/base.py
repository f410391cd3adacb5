"""What every extract reader yields: string batches, and an account of the rows it could not use."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from migrate.errors import InputError


@dataclass(frozen=True)
class UnreadableRow:
    """A row the reader had to skip (wrong number of fields): quarantined as RAGGED_ROW.

    detail never holds the row's text: free-text columns may carry customers' names. The
    cells are kept in memory only, so that the row can be tied to its installation.
    """

    row: int
    detail: str
    cells: tuple[str, ...] = ()


@dataclass
class ReadAccount:
    """Rows a reader met that are not data rows, or that it could not split into columns."""

    unreadable: list[UnreadableRow] = field(default_factory=list)
    blank_rows: int = 0
    trailer_rows: int = 0


class ExtractReader(Protocol):
    """A source of string batches.

    Each batch comes with the ordinals of its rows (0-based, in file order, counting every
    record the reader emitted); `source_rows` turns ordinals into the row numbers a person
    finds in the file. It is only final once the batches are exhausted, because a text
    reader learns where skipped rows were only at the end.
    """

    path: Path
    columns: list[str]
    account: ReadAccount

    def described(self) -> dict[str, object]:
        """What the reader found or was told (format, encoding, delimiter, header row), for
        the log: `auto` settings are only trusted once a person can see what they chose."""
        ...

    def batches(self) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]: ...

    def source_rows(self, ordinals: np.ndarray) -> np.ndarray: ...


def match_header(
    path: Path, candidates: Sequence[Sequence[str]], required: Sequence[str], *, where: str
) -> tuple[int, list[str]]:
    """Find the header among the first rows: the first that names every required column.

    Names are compared trimmed and case-insensitively, since vendors are loose about both;
    the returned names are trimmed and made unique, in file order.
    """
    wanted = {name.strip().casefold() for name in required}
    best: tuple[int, list[str]] | None = None
    for index, cells in enumerate(candidates):
        names = [str(cell).strip().lstrip("\ufeff") for cell in cells]
        present = {name.casefold() for name in names}
        if wanted <= present:
            return index, unique_names(path, names, required)
        if best is None or len(present & wanted) > len(set(best[1]) & wanted):
            best = (index, [n.casefold() for n in names])
    found = set(best[1] if best else [])
    missing = [name.strip() for name in required if name.strip().casefold() not in found]
    raise InputError(
        path,
        f"required columns missing: {', '.join(missing)} "
        f"(no row among the first {len(candidates)} {where} names them all)",
    )


def unique_names(path: Path, names: list[str], required: Sequence[str]) -> list[str]:
    """Required names take the mapping's spelling; blank or repeated names get a suffix.

    A repeated required name is ambiguous: which of the two columns is meant cannot be told.
    """
    wanted = {name.strip().casefold(): name.strip() for name in required}
    seen: dict[str, int] = {}
    result = []
    for position, name in enumerate(names, start=1):
        key = name.casefold()
        if key in seen and key in wanted:
            raise InputError(path, f"column {name!r} appears twice in the header", column=name)
        seen[key] = seen.get(key, 0) + 1
        if key in wanted:
            name = wanted[key]
        elif not name:
            name = f"column_{position}"
        elif seen[key] > 1:
            name = f"{name}.{seen[key]}"
        result.append(name)
    return result
