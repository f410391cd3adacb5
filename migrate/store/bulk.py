"""Bulk writes and reads: every row in one statement's worth of work, never a statement per
row.

Writes are of rows the caller knows to be new (it holds the lock that serialises writers and
has looked): SQLite, executemany of a prepared INSERT in the caller's transaction;
PostgreSQL, COPY of Arrow-written CSV straight into the table. Either way a row that is there
after all fails the statement, and with it the caller's transaction: all or none. Rows go in
key order, so B-tree pages fill in turn rather than split at random.
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

CHUNK = 50_000


def insert_new(connection: Connection, table_name: str, rows: pa.Table, key: list[str]) -> None:
    """Insert the table's rows (columns named as in the database), none of which the table
    holds yet, in the order of `key`. Values are bound or copied, never formatted into SQL;
    the table and column names are the code's own."""
    if rows.num_rows == 0:
        return
    rows = rows.sort_by([(name, "ascending") for name in key])
    names = ", ".join(rows.column_names)
    if connection.dialect.name == "postgresql":
        _copy(connection, table_name, names, rows)
        return
    rows = _sqlite_times(rows)
    marks = ", ".join("?" for _ in rows.column_names)
    statement = f"INSERT INTO {table_name} ({names}) VALUES ({marks})"
    for start in range(0, rows.num_rows, CHUNK):
        part = rows.slice(start, CHUNK)
        columns = [column.to_pylist() for column in part.columns]
        connection.exec_driver_sql(statement, list(zip(*columns, strict=True)))


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


def _copy(connection: Connection, table_name: str, names: str, rows: pa.Table) -> None:
    buffer = io.BytesIO()
    pacsv.write_csv(
        rows, buffer, write_options=pacsv.WriteOptions(include_header=False, quoting_style="needed")
    )
    raw = connection.connection.driver_connection
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {table_name} ({names}) FROM STDIN WITH (FORMAT csv)") as copy,
    ):
        copy.write(buffer.getbuffer())


def rows_where_in(
    connection: Connection, table: str, columns: list[str], column: str, values: Sequence[str]
) -> list[tuple[Any, ...]]:
    """`SELECT columns FROM table WHERE column IN values` for hundreds of thousands of values:
    each chunk of values is one bound parameter, a JSON array that the database unpacks in C
    (json_each on SQLite, json_array_elements_text on PostgreSQL), not one parameter per
    value for SQLAlchemy to render. `table` and the column names are the code's own."""
    names = ", ".join(columns)
    if connection.dialect.name == "postgresql":
        values_of = "SELECT json_array_elements_text(%s::json)"
    else:
        values_of = "SELECT value FROM json_each(?)"
    statement = f"SELECT {names} FROM {table} WHERE {column} IN ({values_of})"
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
