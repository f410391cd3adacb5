"""CSV exports that a spreadsheet cannot turn into formulas, written whole or not at all.

A supplier's extract may hold `=HYPERLINK(...)` in a free-text field; a quarantine CSV that
repeats it would run it in the reader's Excel. Cells starting with = + - @ (or a tab or
carriage return) are prefixed with an apostrophe, which spreadsheets show as text.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

FORMULA_START = "=+-@\t\r"
_STARTS_FORMULA = np.zeros(256, dtype=bool)
_STARTS_FORMULA[[ord(char) for char in FORMULA_START]] = True


def _risky(column: pa.Array) -> np.ndarray:
    """Whether each value starts with a formula character: the first byte of every value,
    read from Arrow's buffers (every such character is one byte in UTF-8)."""
    width = np.int64 if pa.types.is_large_string(column.type) else np.int32
    offsets = np.frombuffer(column.buffers()[1], dtype=width)[
        column.offset : column.offset + len(column) + 1
    ]
    data = column.buffers()[2]
    starts = offsets[:-1]
    filled = offsets[1:] > starts
    risky = np.zeros(len(column), dtype=bool)
    if data is not None and filled.any():
        risky[filled] = _STARTS_FORMULA[np.frombuffer(data, dtype=np.uint8)[starts[filled]]]
    return risky


def neutralise_formulas(table: pa.Table) -> pa.Table:
    """Every string column made safe to open in a spreadsheet; other types as they are."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
            risky = _risky(column)
            if risky.any():
                column = pc.if_else(
                    pa.array(risky), pc.binary_join_element_wise("'", column, ""), column
                )
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def write_csv(table: pa.Table, path: Path) -> None:
    """Written under a temporary name beside `path` and renamed: a half-written CSV would be
    read as the real one."""
    # A fresh name created as any file is (the umask's mode), not mkstemp's owner-only one:
    # colleagues who share a reports folder read the CSVs beside the HTML page.
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(8)}.csv")
    try:
        pacsv.write_csv(neutralise_formulas(table), temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
