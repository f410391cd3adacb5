"""Zero-copy numpy views of Arrow string arrays: their offsets, bytes, and fixed-width rows.

Identifiers, dates and row hashes are checked position by position; when the rows of an
array are all the same width they lie back to back in its data buffer, and a reshape gives
an (n, width) byte matrix in place of a loop.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def string_views(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Zero-copy numpy views of a string array: its n + 1 offsets (honouring a slice) and data."""
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    n = len(arr)
    _, offset_buf, data_buf = arr.buffers()
    if n == 0 or offset_buf is None:
        return np.zeros(n + 1, dtype=dtype), np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(offset_buf, dtype=dtype)[arr.offset : arr.offset + n + 1]
    data = np.zeros(0, np.uint8) if data_buf is None else np.frombuffer(data_buf, dtype=np.uint8)
    return offsets, data


def byte_lengths(arr: pa.Array) -> np.ndarray:
    """Byte length of every row (meaningless for null rows, which callers mask out)."""
    offsets, _ = string_views(arr)
    return np.diff(offsets)


def byte_matrix(arr: pa.Array, width: int) -> np.ndarray:
    """(n, width) uint8 view of an array whose rows are all non-null and `width` bytes long.

    Rows of equal width lie back to back in the data buffer, so a reshape replaces a loop.
    """
    n = len(arr)
    if n == 0:
        return np.zeros((0, width), dtype=np.uint8)
    offsets, data = string_views(arr)
    start, stop = int(offsets[0]), int(offsets[-1])
    if arr.null_count or stop - start != n * width:
        raise ValueError(f"rows are not all non-null and {width} bytes long")
    return data[start:stop].reshape(n, width)
