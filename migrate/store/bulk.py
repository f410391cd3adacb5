"""Bulk writes: every row in one statement's worth of work, never a statement per row.

SQLite: executemany of a prepared INSERT ... ON CONFLICT DO NOTHING, in the caller's
transaction. PostgreSQL: COPY of Arrow-written CSV into a temporary table, then one INSERT ...
SELECT ... ORDER BY the key ON CONFLICT DO NOTHING (sorted rows insert faster).
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection

CHUNK = 50_000


def insert_ignoring_present(
    connection: Connection, table_name: str, rows: pa.Table, key: list[str]
) -> None:
    """Insert the table's rows (columns named as in the database), skipping rows whose
    primary key (`key`) is already there. Rows go in key order: B-tree inserts in order are
    half the work of random ones. Parameters are bound, never formatted into SQL."""
    if rows.num_rows == 0:
        return
    rows = rows.sort_by([(name, "ascending") for name in key])
    names = ", ".join(rows.column_names)
    if connection.dialect.name == "postgresql":
        _copy(connection, table_name, names, rows)
        return
    marks = ", ".join("?" for _ in rows.column_names)
    statement = f"INSERT INTO {table_name} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    for start in range(0, rows.num_rows, CHUNK):
        part = rows.slice(start, CHUNK)
        columns = [column.to_pylist() for column in part.columns]
        connection.exec_driver_sql(statement, list(zip(*columns, strict=True)))


def _copy(connection: Connection, table_name: str, names: str, rows: pa.Table) -> None:
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
            "ORDER BY 1 ON CONFLICT DO NOTHING"
        )
