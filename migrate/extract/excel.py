"""Excel workbooks (.xlsx, .xls, .ods) through calamine, converted to strings cell by cell.

Excel stores every number as a float: a 13-digit MPAN survives (it is below 2**53) and is
written back as an integer; a date cell becomes an ISO date. The cells come as Python
objects, so this reader loops in Python; workbooks top out at about a million rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
from python_calamine import CalamineError, CalamineWorkbook

from migrate.errors import InputError
from migrate.extract.base import ReadAccount, match_header

BATCH_ROWS = 10_000
HEADER_SEARCH_ROWS = 50
EXACT_FLOAT_LIMIT = 2.0**53


def cell_text(value: object) -> str:
    """The string a person would have typed for this cell."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < EXACT_FLOAT_LIMIT:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        # To the second: a fraction (Excel keeps milliseconds) would make the mappings' date
        # formats refuse the value, and a date field wants only its date.
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if value is None:
        return ""
    return str(value)


class ExcelReader:
    """Reads one sheet; the header is the first row naming every required column."""

    def __init__(
        self,
        path: Path,
        required: Sequence[str],
        *,
        sheet: str | None = None,
        header_row: int | None = None,
        trailer: str | None = None,
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self.path = path
        self.account = ReadAccount()
        # ASCII classes (\b, \w, \d), as in RE2, the engine the mapping's pattern is for.
        self._trailer = re.compile(trailer, re.ASCII) if trailer else None
        self._batch_rows = batch_rows
        try:
            workbook = CalamineWorkbook.from_path(str(path))
        except (CalamineError, OSError, ValueError) as error:
            raise InputError(path, f"not a readable spreadsheet: {error}") from error
        if sheet is None:
            sheet = workbook.sheet_names[0]
        elif sheet not in workbook.sheet_names:
            raise InputError(
                path, f"no sheet {sheet!r} (sheets: {', '.join(workbook.sheet_names)})"
            )
        # A workbook's parts are read as they are asked for: a damaged sheet (its XML cut
        # short, a corrupt zip entry) fails here or while its rows are read, not on opening.
        try:
            self._sheet = workbook.get_sheet_by_name(sheet)
            # iter_rows starts at the sheet's row 1 even when the used range starts lower
            # down (it yields the empty rows above it): a row's index is its number less 1.
            head = list(islice(self._sheet.iter_rows(), HEADER_SEARCH_ROWS))
        except CalamineError as error:
            raise self._damaged(sheet, error) from None
        if not head:
            raise InputError(path, f"sheet {sheet!r} is empty")
        if header_row is not None:
            head = head[header_row - 1 : header_row]
        found, self.columns = match_header(
            path, [[cell_text(c) for c in row] for row in head], required, where="of the sheet"
        )
        header_index = found + (header_row - 1 if header_row else 0)
        # Excel numbers rows from 1.
        self._first_data_row = header_index + 2
        self._skip = header_index + 1

    def _damaged(self, sheet: str, error: CalamineError, row: int | None = None) -> InputError:
        return InputError(
            self.path,
            f"sheet {sheet!r} cannot be read ({type(error).__name__}: {error}): the workbook "
            "is damaged; save it again from Excel, or ask the supplier for a new copy",
            row=row,
        )

    def described(self) -> dict[str, object]:
        return {
            "format": "excel",
            "sheet": self._sheet.name,
            "header_row": self._first_data_row - 1,
        }

    def batches(self) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
        width = len(self.columns)
        rows = islice(self._sheet.iter_rows(), self._skip, None)
        ordinal = 0
        # Rows matching the trailer pattern wait here: they are trailers only if no data
        # follows them (a trailer ends the sheet), else data in their place.
        pending: list[tuple[int, list[str]]] = []
        while chunk := self._next_rows(rows, ordinal):
            texts = []
            ordinals = []
            for offset, row in enumerate(chunk):
                cells = [cell_text(c) for c in row[:width]]
                cells.extend([""] * (width - len(cells)))
                if not any(cell.strip() for cell in cells):
                    self.account.blank_rows += 1
                elif self._trailer is not None and self._trailer.search(cells[0]):
                    pending.append((ordinal + offset, cells))
                else:
                    for waited, held in pending:
                        texts.append(held)
                        ordinals.append(waited)
                    pending.clear()
                    texts.append(cells)
                    ordinals.append(ordinal + offset)
            ordinal += len(chunk)
            if texts:
                arrays = [pa.array(column, pa.string()) for column in zip(*texts, strict=True)]
                yield (
                    pa.RecordBatch.from_arrays(arrays, names=self.columns),
                    np.asarray(ordinals, dtype=np.int64),
                )
        self.account.trailer_rows += len(pending)

    def _next_rows(self, rows: Iterator[list[object]], ordinal: int) -> list[list[object]]:
        try:
            return list(islice(rows, self._batch_rows))
        except CalamineError as error:
            raise self._damaged(
                self._sheet.name, error, row=ordinal + self._first_data_row
            ) from None

    def source_rows(self, ordinals: np.ndarray) -> np.ndarray:
        return ordinals + self._first_data_row
