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
