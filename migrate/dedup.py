"""Exact duplicate rows: found by a 64-bit hash of the whole row, confirmed on the row's text.

Arrow's own hash tables over a million 100-byte strings take over half a second; hashing
fixed-width 8-byte words with numpy takes a fifth of that. A hash only nominates candidates:
rows are called duplicates after their full texts compare equal, so a collision can never
drop a row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SEED = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)
_SHIFT = np.uint64(31)


def row_text(batch: pa.RecordBatch) -> pa.Array:
    """The whole row as one string: every column, personal ones too, since two rows that
    differ only in a note are not duplicates. Null and empty stay distinct."""
    if batch.num_columns == 1:
        return pc.fill_null(batch.column(0), "\x00").cast(pa.string())
    # Nulls written by the join itself, not filled into a copy of each column first.
    return pc.binary_join_element_wise(
        *batch.columns, "\x1f", null_handling="replace", null_replacement="\x00"
    )


# The most bytes of rows padded together. Padded to the batch's longest row, a batch of
# 87,000 rows with one 60 KB note took 5 GB (beyond what one Arrow string array holds):
# rows are then hashed in groups of like length, each padded within this.
PADDED_BYTES = 1 << 26


def row_hashes(text: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string, mixed 8 bytes at a time; the same string hashes alike
    in any batch, whatever the batch's width."""
    if len(text) == 0:
        return np.empty(0, dtype=np.uint64)
    text = text.cast(pa.string())
    lengths = pc.binary_length(text).to_numpy(zero_copy_only=False).astype(np.uint64)
    width = int(_padded_widths(lengths.max()))
    if len(text) * width <= PADDED_BYTES:  # the usual batch
        return _padded_hashes(text, lengths, width)
    order = np.argsort(lengths, kind="stable")
    widths = _padded_widths(lengths[order])
    digest = np.empty(len(text), dtype=np.uint64)
    start = 0
    while start < len(order):
        # The rows from `start` that fit, padded to the longest of them (at least one row).
        cost = np.arange(1, len(order) - start + 1) * widths[start:]
        stop = start + max(1, int(np.searchsorted(cost, PADDED_BYTES, side="right")))
        rows = order[start:stop]
        digest[rows] = _padded_hashes(
            text.take(pa.array(rows)), lengths[rows], int(widths[stop - 1])
        )
        start = stop
    return digest


def _padded_widths(lengths: np.ndarray | np.uint64) -> np.ndarray:
    """Each length rounded up to whole 8-byte words, at least one."""
    whole = lengths.astype(np.int64)
    return np.maximum(8, -(-whole // 8) * 8)


def _padded_hashes(text: pa.Array, lengths: np.ndarray, width: int) -> np.ndarray:
    """Each row padded to `width` (a multiple of 8, at least its longest) and hashed."""
    padded = pc.ascii_rpad(text, width=width, padding="\x00")
    offsets = np.frombuffer(
        padded.buffers()[1], dtype=np.int32, count=len(padded) + 1, offset=padded.offset * 4
    )
    data = np.frombuffer(padded.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    words = data.view(np.uint64).reshape(len(padded), width // 8)
    digest = lengths * _SEED
    for column in range(words.shape[1]):
        # Words past a row's end are padding, whose amount depends on the batch: skip them.
        mixed = (digest ^ words[:, column]) * _MIX
        mixed ^= mixed >> _SHIFT
        digest = np.where(lengths > column * 8, mixed, digest)
    return digest


def find_duplicates(hashes: np.ndarray, texts: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the rows that repeat an earlier row exactly, and of the row each repeats.

    Rows sharing a hash are candidates; among them, equal texts decide. The earliest of
    equal rows is the original.
    """
    empty = np.empty(0, dtype=np.int64)
    candidates = _shared(hashes)
    if not len(candidates):
        return empty, empty
    codes = pc.dictionary_encode(_take_chunked(texts, candidates)).indices.to_numpy()
    first = np.full(int(codes.max()) + 1, len(candidates), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(candidates)))
    original = first[codes]
    duplicate = original != np.arange(len(candidates))
    return candidates[duplicate], candidates[original[duplicate]]


# Bits of a hash that index the table of repeated hashes in `_shared`: 2**20 flags (1 MB)
# let through about one in a thousand unrepeated hashes when a thousand hashes repeat.
_TABLE_BITS = 20


def _shared(hashes: np.ndarray) -> np.ndarray:
    """Positions of the hashes that occur more than once, in order.

    numpy sorts a million 8-byte words in a fortieth of a second, where Arrow's hash table
    over them took a quarter (and more on a VM, where its growing table's fresh pages come
    dear). The few repeated values then mark a table of flags by their low bits; only the
    positions a flag lets through are looked up among them exactly."""
    hashes = hashes.astype(np.uint64, copy=False)  # the flags' index is its low bits
    ordered = np.sort(hashes)
    repeats = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if not len(repeats):
        return np.empty(0, dtype=np.int64)
    low = np.uint64((1 << _TABLE_BITS) - 1)
    flags = np.zeros(1 << _TABLE_BITS, dtype=bool)
    flags[(repeats & low).astype(np.intp)] = True
    maybe = np.flatnonzero(flags[(hashes & low).astype(np.intp)])
    found = np.minimum(np.searchsorted(repeats, hashes[maybe]), len(repeats) - 1)
    return maybe[repeats[found] == hashes[maybe]]


def _take_chunked(texts: pa.ChunkedArray, positions: np.ndarray) -> pa.Array:
    """texts[positions] (positions sorted), taking from each chunk in place: a take on the
    whole chunked array would first copy every chunk into one."""
    bounds = np.cumsum([0, *(len(chunk) for chunk in texts.chunks)])
    which = np.searchsorted(bounds, positions, side="right") - 1
    parts = [
        texts.chunk(int(chunk)).take(pa.array(positions[which == chunk] - bounds[chunk]))
        for chunk in np.unique(which)
    ]
    return pa.concat_arrays(parts)


def repeated(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Where a (non-null) value occurs more than once: the same nomination by hash and
    confirmation on the text, for identifiers (a device id, an MPAN) over a whole estate."""
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values])
    values = values.cast(pa.string())
    flags = np.zeros(len(values), dtype=bool)
    present = np.flatnonzero(pc.is_valid(values).to_numpy(zero_copy_only=False))
    if len(present) < 2:
        return flags
    kept = values if len(present) == len(values) else values.take(pa.array(present))
    hashes = np.concatenate([row_hashes(chunk) for chunk in kept.chunks])
    duplicate, original = find_duplicates(hashes, kept)
    flags[present[duplicate]] = True
    flags[present[original]] = True
    return flags
