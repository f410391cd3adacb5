"""Exact duplicates: nominated by hash, decided by the full text."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "dd", "e" * 40]), max_size=60),
    st.integers(min_value=1, max_value=2**64 - 1),
)
def test_duplicates_are_the_later_copies_of_equal_texts_whatever_the_hashes(
    values: list[str], modulus: int
) -> None:
    """Real hashes, and hashes folded onto a few values (collisions everywhere) or spread by
    their high bits only (the table of flags sees them all alike): the same answer."""
    texts = pa.chunked_array([pa.array(values[:7], pa.string()), pa.array(values[7:], pa.string())])
    hashes = row_hashes(pa.array(values, pa.string()))
    earliest: dict[str, int] = {}
    expected = [(n, earliest.setdefault(v, n)) for n, v in enumerate(values)]
    expected = [(n, first) for n, first in expected if n != first]
    for nominated in (hashes, hashes % np.uint64(modulus), hashes << np.uint64(40)):
        duplicate, original = find_duplicates(nominated, texts)
        assert list(zip(duplicate.tolist(), original.tolist(), strict=True)) == expected


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.text(max_size=90), min_size=1, max_size=60),
    budget=st.integers(min_value=8, max_value=2048),
)
def test_rows_hashed_in_groups_hash_as_in_one_padded_batch(texts: list[str], budget: int) -> None:
    """A batch too wide to pad whole (one long note among short rows) is hashed in groups
    of like length: each row's hash is the one it has in any batch."""
    import pytest

    array = pa.array(texts, pa.string())
    whole = row_hashes(array)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("migrate.dedup.PADDED_BYTES", budget)
        grouped = row_hashes(array)
    assert grouped.tolist() == whole.tolist()
    assert [row_hashes(pa.array([text]))[0] for text in texts] == whole.tolist()


def test_one_long_note_in_a_wide_batch_is_hashed_without_padding_every_row() -> None:
    """87,040 rows and one 60 KB note: padded together they took 5 GB, more than one Arrow
    array holds (an internal error); the duplicate of the note is still found."""
    rows = [f"LG{index:07d};ESME;E470" for index in range(87_040)]
    rows[500] += ";" + "Note " * 12_000
    rows[9_000] = rows[500]
    texts = pa.chunked_array([pa.array(rows, pa.string())])
    hashes = row_hashes(texts.chunk(0))
    duplicate, original = find_duplicates(hashes, texts)
    assert (duplicate.tolist(), original.tolist()) == ([9_000], [500])
