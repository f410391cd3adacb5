"""CSV exports that a spreadsheet cannot turn into formulas, written whole or not at all.

A supplier's extract may hold `=HYPERLINK(...)` in a free-text field; a quarantine CSV that
repeats it would run it in the reader's Excel. Cells starting with = + - @ (or a tab or
carriage return) are prefixed with an apostrophe, which spreadsheets show as text.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

FORMULA_START = r"^[=+\-@\t\r]"


def neutralise_formulas(table: pa.Table) -> pa.Table:
    """Every string column made safe to open in a spreadsheet; other types as they are."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.fill_null(pc.match_substring_regex(column, FORMULA_START), False)
            column = pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def write_csv(table: pa.Table, path: Path) -> None:
    """Written under a temporary name beside `path` and renamed: a half-written CSV would be
    read as the real one."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".csv", dir=path.parent)
    os.close(handle)
    try:
        pacsv.write_csv(neutralise_formulas(table), temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
