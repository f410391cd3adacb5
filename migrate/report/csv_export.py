"""CSV exports that a spreadsheet cannot turn into formulas.

A supplier's extract may hold `=HYPERLINK(...)` in a free-text field; a quarantine CSV that
repeats it would run it in the reader's Excel. Cells starting with = + - @ (or a tab or
carriage return) are prefixed with an apostrophe, which spreadsheets show as text.
"""

from __future__ import annotations

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
    pacsv.write_csv(neutralise_formulas(table), path)
