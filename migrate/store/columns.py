"""Query results as Arrow columns, for readers of hundreds of thousands of rows.

A result row through SQLAlchemy costs microseconds (a Row object, type processing per cell),
and even a bare driver tuple costs most of a microsecond per cell. So the rows never cross
into Python one by one:

- PostgreSQL streams them through COPY as CSV, which Arrow parses in C++;
- SQLite joins them into one text in SQL (fields apart by U+001F, rows by U+001E; a value of
  a column that may be NULL marked `s`, NULL written `n`), which Arrow splits. The row count
  comes with it: a value holding a separator would add a row or a field and is caught, and
  the rows are then fetched the ordinary way.

Parameters are always bound by the driver, never formatted into the SQL.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Select, func, literal, select
from sqlalchemy.exc import OperationalError

FETCH_ROWS = 50_000
FIELD, ROW = "\x1f", "\x1e"


def read_table(connection: Connection, query: Select, schema: pa.Schema) -> pa.Table:
    """The rows of `query` (its columns in `schema`'s order) as a table of `schema`.
    Timestamps are UTC: the store writes them so (SQLite keeps no zone)."""
    if connection.dialect.name == "postgresql":
        return _copy_out(connection, query, schema)
    joined = _joined(connection, query, schema)
    return joined if joined is not None else _fetched(connection, query, schema)


def _copy_out(connection: Connection, query: Select, schema: pa.Schema) -> pa.Table:
    compiled = query.compile(dialect=connection.dialect)
    buffer = io.BytesIO()
    with connection.connection.driver_connection.cursor() as cursor:
        statement = f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)"
        with cursor.copy(statement, compiled.construct_params()) as copy:
            for chunk in copy:
                buffer.write(chunk)
    if buffer.tell() == 0:
        return schema.empty_table()
    table = pacsv.read_csv(
        io.BytesIO(buffer.getbuffer()),
        read_options=pacsv.ReadOptions(column_names=schema.names),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(schema.names, pa.string()),
            strings_can_be_null=True,  # COPY writes NULL as an empty unquoted field
            quoted_strings_can_be_null=False,
        ),
    )
    return pa.table([_conform(table.column(f.name), f.type) for f in schema], schema=schema)


def _joined(connection: Connection, query: Select, schema: pa.Schema) -> pa.Table | None:
    """SQLite: every row joined into one text in SQL, split by Arrow; None when a value
    holds a separator (or the text would be too long for SQLite), to fetch the rows instead."""
    inner = query.subquery()
    nullable = [column.nullable for column in query.selected_columns]
    row = None
    for column, may_be_null in zip(inner.columns, nullable, strict=True):
        marked = func.ifnull(literal("s").concat(column), literal("n")) if may_be_null else column
        row = marked if row is None else row.concat(func.char(31)).concat(marked)
    try:
        count, text = connection.execute(
            select(func.count(), func.group_concat(row, func.char(30))).select_from(inner)
        ).one()
    except OperationalError:  # "string or blob too big"
        return None
    if not count:
        return schema.empty_table()
    rows = pc.list_flatten(pc.split_pattern(pa.array([text], pa.large_string()), ROW))
    del text
    if len(rows) != count:
        return None
    fields = pc.split_pattern(rows, FIELD)
    if not pc.all(pc.equal(pc.list_value_length(fields), len(schema))).as_py():
        return None
    columns = []
    for index, (field, may_be_null) in enumerate(zip(schema, nullable, strict=True)):
        value = pc.list_element(fields, index)
        if may_be_null:
            value = pc.if_else(
                pc.equal(value, "n"),
                pa.scalar(None, pa.large_string()),
                pc.utf8_slice_codeunits(value, start=1),
            )
        columns.append(_conform(value.cast(pa.string()), field.type))
    return pa.table(columns, schema=schema)


def _fetched(connection: Connection, query: Select, schema: pa.Schema) -> pa.Table:
    compiled = query.compile(dialect=connection.dialect)
    params = compiled.construct_params()
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.execute(str(compiled), tuple(params[name] for name in compiled.positiontup or []))
        parts: list[pa.RecordBatch] = []
        while rows := cursor.fetchmany(FETCH_ROWS):
            columns = list(zip(*rows, strict=True))
            parts.append(
                pa.RecordBatch.from_arrays(
                    [_conform(pa.array(c), f.type) for c, f in zip(columns, schema, strict=True)],
                    schema=schema,
                )
            )
    finally:
        cursor.close()
    return pa.Table.from_batches(parts, schema=schema)


def _conform(values: pa.Array | pa.ChunkedArray, kind: pa.DataType) -> pa.Array:
    """A column as the driver gave it (SQLite: its own types or text; PostgreSQL's CSV: text)
    made the type asked for."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type == kind:
        return values
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), kind)
    if pa.types.is_boolean(kind) and pa.types.is_string(values.type):
        truth = pc.is_in(pc.utf8_lower(values), value_set=pa.array(["t", "true", "1"]))
        return pc.if_else(pc.is_null(values), pa.scalar(None, pa.bool_()), truth)
    if pa.types.is_timestamp(kind) and pa.types.is_string(values.type):
        # Text with no zone is UTC (SQLite keeps none: SQLAlchemy writes the UTC wall time);
        # rows written by the bulk path, and PostgreSQL's CSV, carry their offset.
        zoned = pc.match_substring_regex(values, r"(Z|[+-]\d\d(:?\d\d)?)$")
        values = pc.if_else(zoned, values, pc.binary_join_element_wise(values, "+00:00", ""))
    return values.cast(kind)
