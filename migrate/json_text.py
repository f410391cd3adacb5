"""JSON text built column-wise with Arrow: a plan lists hundreds of thousands of
installations, and building a Python dict for each costs seconds.

Fragments are Arrow string arrays, one JSON value per row; `lines` and `joined_lines` join
them into parts of a JSON array, and `document_chunks` writes a document of such parts, one
fragment a line. The output is deterministic: the same columns give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.chunks import single

NULL = "null"


# Bytes an Arrow string array can hold (32-bit offsets); beyond, large_string.
STRING_LIMIT = 2**31


def _joined_size(fragments: pa.Array) -> int:
    """Bytes of the fragments joined, each followed by a comma and a line break."""
    return int(pc.sum(pc.binary_length(fragments)).as_py() or 0) + 2 * len(fragments)


def _needs_escaping(values: pa.Array) -> bool:
    """Whether any value holds a byte that a JSON string literal cannot hold as it is (a
    quote, a backslash, a control character): comparisons over its bytes (a slice's only,
    not all of its parent's), which numpy runs many bytes at a time."""
    _, offsets, data = values.buffers()
    if data is None or len(values) == 0:
        return False
    bounds = np.frombuffer(offsets, dtype=np.int32)[[values.offset, values.offset + len(values)]]
    text = np.frombuffer(data, dtype=np.uint8)[bounds[0] : bounds[1]]
    return bool((text < 0x20).any() or (text == ord('"')).any() or (text == ord("\\")).any())


def strings(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each value as a JSON string literal, or null."""
    values = single(values).cast(pa.string())
    return pc.fill_null(_literals(values, _needs_escaping(values)), NULL)


def _literals(values: pa.Array, escaping: bool) -> pa.Array:
    """Each string value as a JSON string literal; a null stays null, for `joined` to write
    as null within its one join. Identifiers seldom hold a quote or a control character, so
    the bytes are checked first (`escaping`) and only the rows that need it are escaped
    (through json.dumps, which knows every rule)."""
    quoted = pc.binary_join_element_wise('"', values, '"', "")
    if escaping:
        risky = pc.fill_null(pc.match_substring_regex(values, r'["\\\x00-\x1f]'), False)
        rows = np.flatnonzero(risky.to_numpy(zero_copy_only=False))
        if len(rows):
            escaped = [
                json.dumps(v, ensure_ascii=False) for v in values.take(pa.array(rows)).to_pylist()
            ]
            quoted = pc.replace_with_mask(quoted, risky, pa.array(escaped, pa.string()))
    return quoted


def numbers(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Integers (or booleans, dates as ISO strings) as JSON literals."""
    values = single(values)
    if pa.types.is_date(values.type):
        return strings(values.cast(pa.string()))
    if pa.types.is_boolean(values.type):
        return pc.fill_null(pc.if_else(values, "true", "false"), NULL)
    return pc.fill_null(values.cast(pa.string()), NULL)


@dataclass(frozen=True)
class Text:
    """A string column to be written as JSON string literals (null as null) by `joined`."""

    values: pa.Array | pa.ChunkedArray


# What `joined` joins: literal text (JSON already), JSON fragments, or a Text column.
Piece = str | pa.Array | pa.ChunkedArray | Text


def joined(*pieces: Piece) -> pa.Array:
    """Row by row, the pieces joined into one string, by one Arrow join (at least one piece
    must be a column). A Text column without nulls or bytes to escape is quoted by the
    literal text around it, not copied once more as literals of its own; a null, in a Text
    column or a fragment, is written as null by the join itself, not filled in by a copy of
    the column first."""
    parts: list[str | pa.Array] = []

    def add(part: str | pa.Array) -> None:
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part
        else:
            parts.append(part)

    for piece in pieces:
        if isinstance(piece, Text):
            values = single(piece.values).cast(pa.string())
            escaping = _needs_escaping(values)
            if values.null_count == 0 and not escaping:
                add('"')
                add(values)
                add('"')
            else:
                add(_literals(values, escaping))
        else:
            add(piece if isinstance(piece, str) else single(piece))
    if any(not isinstance(part, str) and part.null_count for part in parts):
        return pc.binary_join_element_wise(
            *parts, "", null_handling="replace", null_replacement=NULL
        )
    return pc.binary_join_element_wise(*parts, "")  # quicker where no null is to be written


def objects(fields: dict[str, Piece]) -> pa.Array:
    """One JSON object per row from fields already encoded (fragments, or literal JSON text
    for a value every row shares) or Text columns, in the order given."""
    pieces: list[Piece] = []
    for index, (name, value) in enumerate(fields.items()):
        prefix = "{" if index == 0 else ","
        pieces.extend([f'{prefix}"{name}":', value])
    pieces.append("}")
    return joined(*pieces)


def grouped(items: pa.Array, groups: np.ndarray, count: int) -> pa.Array:
    """A JSON array per group (0..count-1) of the encoded items whose group it is, in the
    items' order; [] for a group with none.

    Sorted by group, the items are the values of one list per group (offsets, not copies),
    which Arrow's binary_join writes out with their commas in one pass."""
    items = single(items)
    if len(groups) > 1 and np.any(groups[1:] < groups[:-1]):
        items = items.take(pa.array(np.argsort(groups, kind="stable")))
    offsets = np.concatenate([[0], np.cumsum(np.bincount(groups, minlength=count))])
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items)
    return pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")


def string_lists(lists: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A list<string> column as JSON arrays of strings."""
    lists = single(lists)
    inner = strings(pc.list_flatten(lists))
    # A slice's offsets point into its parent's values; flattened, they start at 0.
    offsets = pc.subtract(lists.offsets, lists.offsets[0])
    rebuilt = pa.ListArray.from_arrays(offsets, inner)
    return pc.binary_join_element_wise("[", pc.binary_join(rebuilt, ","), "]", "")


def _without_last_separator(text: pa.Array) -> pa.Buffer:
    """The bytes of rows that each end in a comma and a line break, less the last two: a
    part of a JSON array, one row a line."""
    if len(text) == 0:
        return pa.py_buffer(b"")
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(text.buffers()[1], dtype=width)
    start = int(offsets[text.offset])
    stop = int(offsets[text.offset + len(text)]) - 2
    return text.buffers()[2].slice(start, stop - start)


def joined_lines(*pieces: Piece) -> pa.Buffer:
    """`lines` of `joined(*pieces)`, made by the one join: each row is joined with its comma
    and line break after it."""
    return _without_last_separator(joined(*pieces, ",\n"))


def lines(fragments: pa.Array | pa.ChunkedArray) -> pa.Buffer:
    """The fragments joined one to a line, a comma after each but the last: a part of a JSON
    array that `document` writes as it is. Joined by Arrow, not by Python strings."""
    fragments = single(fragments)
    # 32-bit offsets while the joined text fits them: a cast to 64-bit would copy it all.
    kind = pa.string() if _joined_size(fragments) < STRING_LIMIT else pa.large_string()
    return _without_last_separator(
        pc.binary_join_element_wise(
            fragments.cast(kind), pa.scalar(",\n", kind), pa.scalar("", kind)
        )
    )


def document(
    head: dict[str, object], arrays: dict[str, pa.Array | Iterable[pa.Buffer]]
) -> list[bytes | pa.Buffer]:
    """The document of `document_chunks`, every chunk made."""
    return list(document_chunks(head, arrays))


def document_chunks(
    head: dict[str, object], arrays: dict[str, pa.Array | Iterable[pa.Buffer]]
) -> Iterator[bytes | pa.Buffer]:
    """A JSON document as byte chunks: the head's keys (Python values), then named arrays of
    fragments, one fragment per line so that two documents diff line by line. An array is
    given as its fragments, or as parts already joined by `lines`, which may still be in the
    making: each is asked for when it is to be written.

    `arrays` is emptied as it goes: each array is let go once joined, so that a plan of
    hundreds of MB is never held twice over."""
    yield b"{\n"
    for key, value in head.items():
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        yield f"{json.dumps(key)}: {text},\n".encode()
    names = list(arrays)
    for index, name in enumerate(names):
        closing = b"]\n" if index == len(names) - 1 else b"],\n"
        value = arrays.pop(name)
        parts = (
            part
            for part in ([lines(value)] if isinstance(value, pa.Array | pa.ChunkedArray) else value)
            if part.size
        )
        del value
        first = next(parts, None)
        if first is None:
            yield f"{json.dumps(name)}: [".encode() + closing
            continue
        yield f"{json.dumps(name)}: [\n".encode()
        yield first
        del first
        for part in parts:
            yield b",\n"
            yield part
        yield b"\n" + closing
    yield b"}\n"
