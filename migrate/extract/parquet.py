"""Parquet extracts (data warehouse exports), streamed by record batch and read as strings.

Warehouses store identifiers as whatever their ETL inferred: floats for MPANs, timestamps for
dates. Casting to string must not invent digits or drop them, so integral floats are written
as integers and anything else is left for the mapping to reject.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.errors import InputError
from migrate.extract.base import ReadAccount, match_header

BATCH_ROWS = 1 << 16
# Above this a float64 no longer holds every integer: the digits are already gone.
EXACT_FLOAT_LIMIT = 2.0**53
# The same limit for the narrower floats (2**(mantissa bits + 1)).
EXACT_FLOAT_LIMITS = {16: 2.0**11, 32: 2.0**24, 64: EXACT_FLOAT_LIMIT}


def as_strings(column: pa.Array) -> pa.Array:
    """Cast one column to strings the way a person would have typed it."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return as_strings(column.dictionary_decode())
    if pa.types.is_string(kind):
        return column
    if pa.types.is_large_string(kind):
        return column.cast(pa.string())
    if pa.types.is_floating(kind):
        return _float_strings(column)
    if pa.types.is_timestamp(kind):
        return _timestamp_strings(column)
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_date(kind):
        return column.cast(pa.string())
    if pa.types.is_decimal(kind):
        return column.cast(pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return column.cast(pa.string())
    if pa.types.is_fixed_size_binary(kind) or pa.types.is_null(kind):
        return column.cast(pa.string())  # a column a warehouse left empty is typed null
    raise TypeError(f"unsupported column type {kind}")


def json_text(column: pa.Array) -> pa.Array:
    """A column with no plain text (lists, structs, maps, durations) as JSON, value by value:
    never a field the mapping reads, but part of the row, so two rows that differ only there
    still differ."""
    return pa.array(
        [None if v is None else json.dumps(v, default=_plain) for v in column.to_pylist()],
        pa.string(),
    )


def _plain(value: object) -> str:
    """JSON's fallback: bytes as hex, which reads back as the bytes (their repr, b'\\xff',
    is Python's spelling, not the data's); anything else (durations, decimals) as its text."""
    return value.hex() if isinstance(value, bytes) else str(value)


def _float_strings(column: pa.Array) -> pa.Array:
    values = pc.if_else(pc.is_nan(column), None, column)
    limit = EXACT_FLOAT_LIMITS[column.type.bit_width]
    integral = pc.and_(pc.equal(pc.floor(values), values), pc.less(pc.abs(values), limit))
    as_int = pc.cast(pc.if_else(integral, values, None), pa.int64()).cast(pa.string())
    text = pc.if_else(integral, as_int, values.cast(pa.string()))
    # From the limit up a float no longer holds every integer, yet Arrow spells a float32 of
    # up to ten digits without an exponent: 202374010 stored as float32 read as 202374020,
    # digits invented. Such values are spelt in scientific notation, which the identifier
    # checks refuse as PRECISION_LOST, as they do a float64's from 2**53.
    beyond = pc.fill_null(pc.greater_equal(pc.abs(values), limit), False)
    rows = np.flatnonzero(beyond.to_numpy(zero_copy_only=False))
    if not len(rows):
        return text
    spelt = [
        np.format_float_scientific(value, unique=True, trim="-")
        for value in column.to_numpy(zero_copy_only=False)[rows]
    ]
    return pc.replace_with_mask(text, beyond, pa.array(spelt, pa.string()))


def _timestamp_strings(column: pa.Array) -> pa.Array:
    """Each value on its own: a midnight timestamp is a date in disguise (an ISO date), one
    with a time an ISO datetime, with a fraction only when it has one. Deciding for a whole
    batch at once would make one timed value turn every date beside it into a datetime (and
    the same value read differently in two batches)."""
    unit = column.type.unit
    ticks = pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    per_day = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}
    per_second = per_day[unit] // 86_400
    midnight = ticks % per_day[unit] == 0
    if midnight.all():
        return column.cast(pa.date32()).cast(pa.string())
    # %S prints a fraction for units below seconds ("05.000000"): whole seconds go without.
    whole = ticks % per_second == 0
    in_seconds = pc.strftime(
        column.cast(pa.timestamp("s", tz=column.type.tz), safe=False), format="%Y-%m-%dT%H:%M:%S"
    )
    timed = (
        in_seconds
        if whole.all()
        else pc.if_else(pa.array(whole), in_seconds, pc.strftime(column, "%Y-%m-%dT%H:%M:%S"))
    )
    return pc.if_else(pa.array(midnight), column.cast(pa.date32()).cast(pa.string()), timed)


class ParquetReader:
    """Streams a Parquet file in record batches; row numbers are record numbers from 1."""

    def __init__(self, path: Path, required: Sequence[str], *, batch_rows: int = BATCH_ROWS):
        self.path = path
        self.account = ReadAccount()
        self._batch_rows = batch_rows
        import pyarrow.parquet as pq  # a tenth of pyarrow's import, for Parquet extracts only

        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise InputError(path, f"not a readable Parquet file: {error}") from error
        names = self._file.schema_arrow.names
        _, self.columns = match_header(path, [names], required, where="of the schema")
        self._used = {name.strip().casefold() for name in required}
        self._emitted = 0

    def described(self) -> dict[str, object]:
        return {"format": "parquet", "row_groups": self._file.num_row_groups}

    def batches(self) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
        try:
            for batch in self._file.iter_batches(batch_size=self._batch_rows):
                columns = []
                for name, column in zip(self.columns, batch.columns, strict=True):
                    columns.append(self._strings(name, column))
                ordinals = np.arange(self._emitted, self._emitted + batch.num_rows)
                self._emitted += batch.num_rows
                yield pa.RecordBatch.from_arrays(columns, names=self.columns), ordinals
        except (pa.ArrowException, OSError) as error:
            raise InputError(self.path, f"cannot be read: {error}") from error

    def _strings(self, name: str, column: pa.Array) -> pa.Array:
        try:
            return as_strings(column)
        except (TypeError, pa.ArrowInvalid) as error:
            # ArrowInvalid: a binary column whose bytes are not UTF-8 has no text of its own.
            if name.casefold() not in self._used:
                return json_text(column)
            problem = (
                str(error)
                if isinstance(error, TypeError)
                else f"the column holds bytes that are not text ({error})"
            )
            raise InputError(self.path, problem, column=name) from error

    def source_rows(self, ordinals: np.ndarray) -> np.ndarray:
        return ordinals + 1
