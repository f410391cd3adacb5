"""JSON text built column-wise with Arrow: a plan lists hundreds of thousands of
installations, and building a Python dict for each costs seconds.

Every function returns an Arrow string array of JSON fragments, one per row, that the caller
joins. The output is deterministic: the same columns give the same bytes.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NULL = "null"


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def strings(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each value as a JSON string literal, or null. Backslash and quote are escaped in
    bulk; the rare value holding a control character goes through json.dumps."""
    values = _as_array(values).cast(pa.string())
    escaped = pc.replace_substring(values, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    control = pc.fill_null(pc.match_substring_regex(values, r"[\x00-\x1f]"), False)
    if pc.any(control).as_py():
        rows = np.flatnonzero(control.to_numpy(zero_copy_only=False))
        slow = [json.dumps(v, ensure_ascii=False) for v in values.take(pa.array(rows)).to_pylist()]
        mask = np.zeros(len(values), dtype=bool)
        mask[rows] = True
        replacement = pa.array(slow, pa.string())
        quoted = pc.replace_with_mask(quoted, pa.array(mask), replacement)
    return pc.fill_null(quoted, NULL)


def numbers(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Integers (or booleans, dates as ISO strings) as JSON literals."""
    values = _as_array(values)
    if pa.types.is_date(values.type):
        return strings(values.cast(pa.string()))
    if pa.types.is_boolean(values.type):
        return pc.fill_null(pc.if_else(values, "true", "false"), NULL)
    return pc.fill_null(values.cast(pa.string()), NULL)


def objects(fields: dict[str, pa.Array]) -> pa.Array:
    """One JSON object per row from already-encoded fields, in the order given."""
    pieces: list[pa.Array | str] = []
    for index, (name, text) in enumerate(fields.items()):
        prefix = "{" if index == 0 else ","
        pieces.extend([f'{prefix}"{name}":', text])
    pieces.append("}")
    return pc.binary_join_element_wise(*pieces, "")


def grouped(items: pa.Array, groups: np.ndarray, count: int) -> pa.Array:
    """A JSON array per group (0..count-1) of the encoded items whose group it is, in the
    items' order; [] for a group with none."""
    order = np.argsort(groups, kind="stable")
    per = np.bincount(groups, minlength=count)
    offsets = np.concatenate([[0], np.cumsum(per)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), _as_array(items).take(pa.array(order)))
    return pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")


def string_lists(lists: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A list<string> column as JSON arrays of strings."""
    lists = _as_array(lists)
    inner = strings(pc.list_flatten(lists))
    offsets = lists.offsets
    rebuilt = pa.ListArray.from_arrays(offsets, inner)
    return pc.binary_join_element_wise("[", pc.binary_join(rebuilt, ","), "]", "")


def document(head: dict[str, object], arrays: dict[str, pa.Array]) -> str:
    """A JSON document: the head's keys (Python values), then named arrays of fragments,
    one fragment per line so that a diff of two plans reads line by line."""
    lines = ["{"]
    for key, value in head.items():
        lines.append(f"{json.dumps(key)}: {json.dumps(value, sort_keys=True, ensure_ascii=False)},")
    names = list(arrays)
    for index, name in enumerate(names):
        fragments = arrays[name].to_pylist()
        closing = "]" if index == len(names) - 1 else "],"
        if fragments:
            lines.append(f"{json.dumps(name)}: [")
            lines.append(",\n".join(fragments))
            lines.append(closing)
        else:
            lines.append(f"{json.dumps(name)}: [{closing}")
    lines.append("}")
    return "\n".join(lines) + "\n"
