"""JSON built column-wise must read back as exactly the values it was built from."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate import json_text

TEXT = st.one_of(
    st.none(), st.text(max_size=30), st.sampled_from(['"', "\\", "\n", "\x00", "é£", "</script>"])
)


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, max_size=40))
def test_strings_read_back_as_the_values(values: list[str | None]) -> None:
    encoded = json_text.strings(pa.array(values, pa.string())).to_pylist()
    assert [json.loads(text) for text in encoded] == values


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), TEXT, TEXT), max_size=30),
    st.integers(1, 6),
)
def test_objects_and_groups_read_back(
    rows: list[tuple[int, str | None, str | None]], extra: int
) -> None:
    count = max([group for group, _, _ in rows], default=0) + extra
    groups = np.array([group for group, _, _ in rows], dtype=np.int64)
    items = json_text.objects(
        {
            "a": json_text.strings(pa.array([a for _, a, _ in rows], pa.string())),
            "b": json_text.strings(pa.array([b for _, _, b in rows], pa.string())),
        }
    )
    grouped = json_text.grouped(items, groups, count).to_pylist()
    expected = [[{"a": a, "b": b} for g, a, b in rows if g == group] for group in range(count)]
    # grouped keeps the items' order within a group (a stable sort by group)
    assert [json.loads(text) for text in grouped] == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(TEXT.filter(lambda t: t is not None), max_size=4), max_size=8), st.data())
def test_string_lists_read_back_from_a_slice_too(
    lists: list[list[str]], data: st.DataObject
) -> None:
    # A column taken as its only chunk may be a slice, whose offsets point into its parent.
    start = data.draw(st.integers(0, len(lists)))
    column = pa.array(lists, pa.list_(pa.string())).slice(start)
    encoded = json_text.string_lists(pa.chunked_array([column])).to_pylist()
    assert [json.loads(text) for text in encoded] == lists[start:]


@pytest.mark.parametrize("limit", [json_text.STRING_LIMIT, 0], ids=["32-bit", "64-bit"])
def test_document_is_valid_json_with_one_entry_a_line(
    limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A limit of 0 takes the path of a text past 2 GB (64-bit offsets) on a small one.
    monkeypatch.setattr(json_text, "STRING_LIMIT", limit)
    arrays = {
        "items": json_text.strings(pa.array(["x", None, "y\nz"])),
        "empty": pa.array([], pa.string()),
    }
    chunks = json_text.document({"version": 1, "note": 'quote " and \\ backslash'}, arrays)
    assert arrays == {}  # each array let go once joined
    text = b"".join(bytes(chunk) for chunk in chunks).decode()
    assert json.loads(text) == {
        "version": 1,
        "note": 'quote " and \\ backslash',
        "items": ["x", None, "y\nz"],
        "empty": [],
    }
    assert '"y\\nz"' in text.splitlines()


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, max_size=40), st.data())
def test_strings_of_a_slice_read_back_as_its_values(
    values: list[str | None], data: st.DataObject
) -> None:
    # Only the slice's bytes are looked at for escaping, not its parent's.
    start = data.draw(st.integers(0, len(values)))
    stop = data.draw(st.integers(start, len(values)))
    column = pa.array(values, pa.string()).slice(start, stop - start)
    encoded = json_text.strings(column).to_pylist()
    assert [json.loads(text) for text in encoded] == values[start:stop]


def test_document_writes_parts_already_joined_between_commas() -> None:
    parts = [
        json_text.lines(json_text.strings(pa.array(["a", "b"]))),
        json_text.lines(json_text.strings(pa.array([], pa.string()))),
        json_text.lines(json_text.strings(pa.array(["c"]))),
    ]
    chunks = json_text.document({}, {"items": parts, "none": []})
    text = b"".join(bytes(chunk) for chunk in chunks).decode()
    assert json.loads(text) == {"items": ["a", "b", "c"], "none": []}
    assert text.splitlines()[1:5] == ['"items": [', '"a",', '"b",', '"c"']


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT), max_size=30))
def test_objects_of_text_columns_and_literals_read_back(rows: list[tuple[str | None, ...]]) -> None:
    # Text columns are quoted by the literals around them when nothing needs escaping, and
    # encoded on their own otherwise: both read back alike.
    objects = json_text.objects(
        {
            "a": json_text.Text(pa.array([a for a, _ in rows], pa.string())),
            "shared": '"same for all"',
            "b": json_text.Text(pa.chunked_array([pa.array([b for _, b in rows], pa.string())])),
            "n": json_text.numbers(pa.array(range(len(rows)))),
        }
    )
    assert [json.loads(text) for text in objects.to_pylist()] == [
        {"a": a, "shared": "same for all", "b": b, "n": n} for n, (a, b) in enumerate(rows)
    ]


@settings(max_examples=100, deadline=None)
@given(st.lists(TEXT, max_size=20), st.lists(TEXT, max_size=20))
def test_joined_lines_are_parts_of_a_document(
    first: list[str | None], then: list[str | None]
) -> None:
    parts = [
        json_text.joined_lines("[", json_text.Text(pa.array(values, pa.string())), "]")
        for values in (first, then)
    ]
    text = b"".join(bytes(chunk) for chunk in json_text.document({}, {"items": parts}))
    assert json.loads(text) == {"items": [[value] for value in first + then]}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(TEXT, st.one_of(st.none(), st.integers(-5, 5))), max_size=30))
def test_a_null_in_a_fragment_or_a_text_column_is_written_as_null(
    rows: list[tuple[str | None, int | None]],
) -> None:
    # The join writes nulls itself: no row of a joined column is ever null, or cut short.
    fragments = pa.array([None if n is None else str(n) for _, n in rows], pa.string())
    joined = json_text.joined(
        "[", json_text.Text(pa.array([text for text, _ in rows], pa.string())), ",", fragments, "]"
    )
    assert joined.null_count == 0
    assert [json.loads(text) for text in joined.to_pylist()] == [list(row) for row in rows]
