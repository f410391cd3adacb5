"""Newline-delimited JSON (one object a line), as the DCC's inventory export is written,
streamed in Arrow batches of strings.

Arrow's JSON parser reads a block at C++ speed when every field the mapping reads holds a
string or null, which is what exports write. A block where one holds a number or a boolean
(JSON's own types, which other tools write for identifiers) is read again line by line, each
value written as a person would type it; a line that is not a JSON object, or a field that
holds an object or a list, makes the file unusable, and the error names its line and field.
"""

from __future__ import annotations

import codecs
import json
import mmap
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from migrate.errors import InputError
from migrate.extract.base import ReadAccount, match_header

BLOCK_BYTES = 1 << 24
# Records whose keys make the "header": an object may leave out a key that is null.
HEADER_SEARCH_ROWS = 50
EXACT_FLOAT_LIMIT = 2**53
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[ord(" "), ord("\t"), ord("\r"), ord("\n")]] = True


def value_text(value: object) -> str | None:
    """A JSON scalar as the string a person would have typed; ValueError for a container."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < EXACT_FLOAT_LIMIT:
            return str(int(value))
        return repr(value)
    raise ValueError(f"holds a JSON {type(value).__name__}, not a value")


def _line_numbers(block: bytes, first_line: int) -> np.ndarray:
    """The file line of every non-blank line of a block that starts at `first_line`. Only
    lines that are empty or start with whitespace can be blank: those few are looked at."""
    view = np.frombuffer(block, dtype=np.uint8)
    breaks = np.flatnonzero(view == 10)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(view)]])
    filled = np.ones(len(starts), dtype=bool)
    empty = starts == ends
    leading = np.zeros(len(starts), dtype=bool)
    leading[~empty] = _WHITESPACE[view[starts[~empty]]]
    filled[empty] = False
    for line in np.flatnonzero(leading):
        filled[line] = bool(block[starts[line] : ends[line]].strip())
    return np.flatnonzero(filled).astype(np.int64) + first_line


class NdjsonReader:
    """Streams a JSON Lines file; row numbers are its lines (blank lines are skipped)."""

    def __init__(
        self, path: Path, required: Sequence[str], *, block_bytes: int = BLOCK_BYTES
    ) -> None:
        self.path = path
        self.account = ReadAccount()
        self._block_bytes = block_bytes
        with path.open("rb") as handle:
            self._bom = handle.read(3) == codecs.BOM_UTF8
        # A file of no objects (an inventory of nothing yet) is an empty table: with no key
        # in it, no mapped key is missing.
        keys = self._sample_keys() or [name.strip() for name in required]
        _, self.columns = match_header(path, [keys], required, where="among the objects' keys")
        # The key as written in the file, for each column as the mapping spells it.
        self._keys = dict(zip(self.columns, keys, strict=True))
        self._schema = pa.schema([pa.field(self._keys[name], pa.string()) for name in self.columns])
        self._lines: list[np.ndarray] = []

    def described(self) -> dict[str, object]:
        return {"format": "ndjson", "bom": self._bom, "keys": len(self.columns)}

    def _sample_keys(self) -> list[str]:
        """Every key of the first objects, in the order first met."""
        keys: dict[str, None] = {}
        with self.path.open("rb") as handle:
            numbered = ((row, line) for row, line in enumerate(handle, start=1) if line.strip())
            for row, line in islice(numbered, HEADER_SEARCH_ROWS):
                keys.update(dict.fromkeys(self._parse(line, row)))
        return list(keys)

    def _parse(self, line: bytes, row: int) -> dict[str, object]:
        try:
            record = json.loads(line.removeprefix(codecs.BOM_UTF8))
        except UnicodeDecodeError:
            raise InputError(self.path, "not UTF-8", row=row) from None
        except json.JSONDecodeError as error:
            raise InputError(
                self.path, f"not JSON at column {error.colno}: {error.msg}", row=row
            ) from None
        except RecursionError:
            raise InputError(self.path, "JSON nested too deeply to be a record", row=row) from None
        if not isinstance(record, dict):
            raise InputError(self.path, f"a JSON {type(record).__name__}, not an object", row=row)
        return record

    def _blocks(self) -> Iterator[tuple[bytes, int]]:
        """Whole lines, about block_bytes at a time, with the file line each starts at."""
        if self.path.stat().st_size == 0:
            return  # nothing to map
        line = 1
        with (
            self.path.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            start = 3 if self._bom else 0
            while start < len(data):
                end = data.find(b"\n", min(start + self._block_bytes, len(data)) - 1)
                end = len(data) if end < 0 else end + 1
                block = data[start:end]
                yield block, line
                line += block.count(b"\n")
                start = end

    def batches(self) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
        emitted = 0
        for block, first_line in self._blocks():
            lines = _line_numbers(block, first_line)
            self.account.blank_rows += block.count(b"\n") + (not block.endswith(b"\n")) - len(lines)
            if not len(lines):
                continue
            batch = self._fast(block)
            if batch is None or batch.num_rows != len(lines):
                batch = self._slow(block, lines)
            self._lines.append(lines)
            ordinals = np.arange(emitted, emitted + batch.num_rows, dtype=np.int64)
            emitted += batch.num_rows
            yield batch, ordinals

    def _fast(self, block: bytes) -> pa.RecordBatch | None:
        """The block through Arrow's parser; None if a field is not a string (or the block is
        not clean JSON): the line-by-line reading then says what and where."""
        try:
            table = pajson.read_json(
                pa.BufferReader(block),
                read_options=pajson.ReadOptions(use_threads=False, block_size=len(block) + 1),
                parse_options=pajson.ParseOptions(
                    explicit_schema=self._schema, unexpected_field_behavior="ignore"
                ),
            )
        except pa.ArrowInvalid:
            return None
        table = table.select([self._keys[name] for name in self.columns])
        return pa.RecordBatch.from_arrays(
            [column.combine_chunks() for column in table.columns], names=self.columns
        )

    def _slow(self, block: bytes, lines: np.ndarray) -> pa.RecordBatch:
        values: dict[str, list[str | None]] = {name: [] for name in self.columns}
        texts = (line for line in block.split(b"\n") if line.strip())
        for row, text in zip(lines.tolist(), texts, strict=True):
            record = self._parse(text, row)
            for name in self.columns:
                try:
                    values[name].append(value_text(record.get(self._keys[name])))
                except ValueError as error:
                    raise InputError(self.path, str(error), row=row, column=name) from None
        return pa.RecordBatch.from_arrays(
            [self._strings(values[name], name, lines) for name in self.columns],
            names=self.columns,
        )

    def _strings(self, values: list[str | None], name: str, lines: np.ndarray) -> pa.Array:
        """A field's values as UTF-8. JSON can spell half a surrogate pair (\\ud800), which
        is no character and has no UTF-8: the line holding it is named."""
        try:
            return pa.array(values, pa.string())
        except UnicodeEncodeError:
            for index, value in enumerate(values):
                if value is not None and not _encodable(value):
                    raise InputError(
                        self.path,
                        "a string holds half of a surrogate pair (a \\uD800-\\uDFFF escape "
                        "without its other half), which is no character",
                        row=int(lines[index]),
                        column=name,
                    ) from None
            raise

    def source_rows(self, ordinals: np.ndarray) -> np.ndarray:
        lines = np.concatenate(self._lines) if self._lines else np.empty(0, np.int64)
        return lines[np.asarray(ordinals, dtype=np.int64)]


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
