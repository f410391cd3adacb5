"""Exact duplicates: nominated by hash, decided by the full text."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from migrate.dedup import find_duplicates, row_hashes, row_text


def test_the_same_text_hashes_alike_in_batches_of_any_width() -> None:
    short = pa.array(["abc;1"])
    wide = pa.array(["abc;1", "x" * 200])
    assert row_hashes(short)[0] == row_hashes(wide)[0]


def test_null_and_empty_fields_are_different_rows() -> None:
    batch = pa.record_batch({"a": ["x", "x"], "b": [None, ""]})
    text = row_text(batch)
    assert text[0] != text[1]


def test_duplicates_name_the_earliest_row() -> None:
    texts = pa.chunked_array([pa.array(["a", "b", "a"]), pa.array(["c", "a", "b"])])
    hashes = np.concatenate([row_hashes(chunk) for chunk in texts.chunks])
    duplicate, original = find_duplicates(hashes, texts)
    assert duplicate.tolist() == [2, 4, 5]
    assert original.tolist() == [0, 0, 1]


def test_a_hash_collision_never_makes_different_rows_duplicates() -> None:
    texts = pa.chunked_array([pa.array(["a", "b", "a", "c"])])
    colliding = np.zeros(4, dtype=np.uint64)  # every row nominated
    duplicate, original = find_duplicates(colliding, texts)
    assert duplicate.tolist() == [2]
    assert original.tolist() == [0]


def test_repeated_marks_every_copy_and_never_a_null() -> None:
    from migrate.dedup import repeated

    values = pa.chunked_array([pa.array(["a", None, "b"]), pa.array(["a", None, "c", "b"])])
    assert repeated(values).tolist() == [True, False, True, True, False, False, True]
