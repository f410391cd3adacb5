"""Columns as single Arrow arrays, whether a table holds them in one chunk or many.

`ChunkedArray.combine_chunks` copies even a column of one chunk (a table read whole, or
already combined): at a million rows that is milliseconds per column, dozens of times a run.
"""

from __future__ import annotations

import pyarrow as pa


def single(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The column as one array: its only chunk as it is, else its chunks joined."""
    if isinstance(values, pa.Array):
        return values
    if values.num_chunks == 1:
        return values.chunk(0)
    return values.combine_chunks()
