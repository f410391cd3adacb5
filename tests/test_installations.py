"""Grouping rows into installations by integer codes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from migrate.installations import first_positions, installation_codes


@given(st.lists(st.one_of(st.none(), st.sampled_from(["A", "B", "C", "D"])), max_size=60))
def test_codes_follow_first_appearance_and_nulls_get_minus_one(ids: list[str | None]) -> None:
    codes, keys = installation_codes(pa.array(ids, pa.string()))
    expected = list(dict.fromkeys(i for i in ids if i is not None))
    assert keys.to_pylist() == expected
    assert [keys[c].as_py() if c >= 0 else None for c in codes] == ids


def test_first_positions_respects_priority_order() -> None:
    codes = np.array([0, 1, 0, 1, 2, -1])
    assert first_positions(codes, np.array([2, 0, 3, 5]), 3).tolist() == [2, 3, -1]
    assert first_positions(codes, np.array([], dtype=np.int64), 3).tolist() == [-1, -1, -1]


@given(
    st.lists(st.integers(min_value=-1, max_value=5), min_size=1, max_size=40),
    st.data(),
)
def test_first_positions_is_the_first_candidate_per_code(
    codes: list[int], data: st.DataObject
) -> None:
    # Grouped codes (runs, each code once: the quick path) and scattered ones alike.
    candidates = data.draw(st.permutations(range(len(codes))))
    candidates = candidates[: data.draw(st.integers(0, len(codes)))]
    expected = [-1] * 6
    for position in candidates:
        if codes[position] >= 0 and expected[codes[position]] == -1:
            expected[codes[position]] = position
    found = first_positions(np.array(codes), np.array(candidates, dtype=np.int64), 6)
    assert found.tolist() == expected


def test_first_positions_takes_each_run_of_a_grouped_extract() -> None:
    codes = np.array([0, 0, 1, 1, 1, 2, -1, 3])
    assert first_positions(codes, np.arange(8), 5).tolist() == [0, 2, 5, 7, -1]
    assert first_positions(codes, np.array([1, 4, 0, 2]), 5).tolist() == [1, 4, -1, -1, -1]
