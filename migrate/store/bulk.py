"""Bulk writes and reads: every row in one statement's worth of work, never a statement per
row.

Writes are of rows the caller knows to be new (it holds the lock that serialises writers and
has looked): SQLite, executemany of a prepared INSERT ... ON CONFLICT DO NOTHING in the
caller's transaction; PostgreSQL, COPY of Arrow-written CSV into a temporary table, then one
INSERT ... SELECT ... ORDER BY the key ON CONFLICT DO NOTHING. Should a row be there after
all, fewer rows are inserted than given, and that is refused (RowsAlreadyPresent), which
fails the caller's transaction: all or none, never a silent skip. Rows go in key order, so
B-tree pages fill in turn rather than split at random.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Column, Connection

from migrate.errors import TerminalError

CHUNK = 50_000


class RowsAlreadyPresent(TerminalError):
    """Rows meant to be new were in the store: another writer got there first."""

    def __init__(self, table_name: str, present: int) -> None:
        super().__init__(
            f"{present} row(s) of {table_name} were already in the store: another process "
            "changed it meanwhile. Nothing was written; run the command again."
        )


def insert_new(connection: Connection, table_name: str, rows: pa.Table, key: list[str]) -> None:
    """Insert the table's rows (columns named as in the database), none of which the table
    holds yet, in the order of `key`. Values are bound or copied, never formatted into SQL;
    the table and column names are the code's own."""
    if rows.num_rows == 0:
        return
    names = ", ".join(rows.column_names)
    if connection.dialect.name == "postgresql":
        inserted = _copy(connection, table_name, names, rows, key)
    else:
        rows = _sqlite_times(rows.sort_by([(name, "ascending") for name in key]))
        marks = ", ".join("?" for _ in rows.column_names)
        statement = f"INSERT INTO {table_name} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        inserted = 0
        for start in range(0, rows.num_rows, CHUNK):
            part = rows.slice(start, CHUNK)
            columns = [column.to_pylist() for column in part.columns]
            result = connection.exec_driver_sql(statement, list(zip(*columns, strict=True)))
            inserted += result.rowcount
    if inserted != rows.num_rows:
        raise RowsAlreadyPresent(table_name, rows.num_rows - inserted)


def _sqlite_times(rows: pa.Table) -> pa.Table:
    """Timestamps as SQLAlchemy writes them to SQLite (UTC, `YYYY-MM-DD HH:MM:SS.ffffff`),
    not as the driver's own adapter would (with `+00:00`): text compared in SQL must be in
    one format, whichever path wrote it."""
    for index, field in enumerate(rows.schema):
        if pa.types.is_timestamp(field.type):
            column = rows.column(index)
            if field.type.tz is not None:
                column = column.cast(pa.timestamp(field.type.unit, tz="UTC"))
            text = pc.strftime(column, format="%Y-%m-%d %H:%M:%S")
            rows = rows.set_column(index, field.name, text)
    return rows


def _copy(
    connection: Connection, table_name: str, names: str, rows: pa.Table, key: list[str]
) -> int:
    """COPY into a scratch table, then insert from it in the key's order, which is the
    server's collation order (the order its index wants; Arrow would sort bytewise).
    Returns the rows inserted."""
    buffer = io.BytesIO()
    pacsv.write_csv(
        rows, buffer, write_options=pacsv.WriteOptions(include_header=False, quoting_style="needed")
    )
    raw = connection.connection.driver_connection
    scratch = f"staging_{table_name}"
    with raw.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {scratch} "
            f"(LIKE {table_name} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        cursor.execute(f"TRUNCATE {scratch}")
        with cursor.copy(f"COPY {scratch} ({names}) FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(buffer.getbuffer())
        cursor.execute(
            f"INSERT INTO {table_name} ({names}) SELECT {names} FROM {scratch} "
            f"ORDER BY {', '.join(key)} ON CONFLICT DO NOTHING"
        )
        return int(cursor.rowcount)


def rows_where_in(
    connection: Connection, table: str, columns: list[str], column: str, values: Sequence[str]
) -> list[tuple[Any, ...]]:
    """`SELECT columns FROM table WHERE column IN values` for hundreds of thousands of values:
    each chunk of values is one bound parameter, a JSON array that the database unpacks in C
    (json_each on SQLite, json_array_elements_text on PostgreSQL), not one parameter per
    value for SQLAlchemy to render. `table` and the column names are the code's own."""
    statement = where_in_statement(connection, table, columns, column)
    found: list[tuple[Any, ...]] = []
    # The driver's own cursor, in the caller's transaction: SQLAlchemy's rows cost more to
    # make than the database takes to find them.
    cursor = connection.connection.driver_connection.cursor()
    try:
        for start in range(0, len(values), CHUNK):
            cursor.execute(statement, (json.dumps(list(values[start : start + CHUNK])),))
            found.extend(cursor.fetchall())
    finally:
        cursor.close()
    return found


def where_in_statement(connection: Connection, table: str, columns: list[str], column: str) -> str:
    """The statement `rows_where_in` runs, its one parameter a JSON array of values."""
    if connection.dialect.name == "postgresql":
        values_of = "SELECT json_array_elements_text(%s::json)"
    else:
        values_of = "SELECT value FROM json_each(?)"
    return f"SELECT {', '.join(columns)} FROM {table} WHERE {column} IN ({values_of})"


def execute_many(connection: Connection, statement: str, rows: Sequence[Sequence[object]]) -> int:
    """One parameterised statement (written with `?` marks) for every row, through the
    driver's own executemany: SQLAlchemy's per-row parameter processing costs more than the
    database does on hot paths. Values must already be in the driver's terms (see
    `driver_value`). Returns the rows affected."""
    if not rows:
        return 0
    return connection.exec_driver_sql(driver_sql(connection, statement), list(rows)).rowcount


def driver_sql(connection: Connection, statement: str) -> str:
    """A statement written with `?` marks in the driver's own parameter style."""
    return statement if connection.dialect.paramstyle == "qmark" else statement.replace("?", "%s")


def driver_value(connection: Connection, column: Column[Any], value: object) -> object:
    """A value as the column's SQLAlchemy type would hand it to the driver (SQLite stores
    datetimes and booleans in its own way), for `execute_many`."""
    dialect = connection.dialect
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return value if process is None else process(value)
