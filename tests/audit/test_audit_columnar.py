"""Sealing from columns: the same records as seal_many, byte for byte."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.audit import GENESIS, format_at, seal_many
from migrate.audit.columnar import PER_ROW, seal_columns

optional = st.none() | st.text(max_size=12)  # quotes, controls, emoji...
per_row = st.fixed_dictionaries({name: optional for name in PER_ROW})
shared = st.fixed_dictionaries(
    {
        "at": st.datetimes(timezones=st.just(dt.UTC)).map(format_at),
        "actor": st.text(min_size=1, max_size=12),
        "command": st.sampled_from(["stage", "commit"]),
        "inputs": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    }
)
keys = st.none() | st.binary(min_size=1, max_size=80)
prev = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).filter(lambda h: h != GENESIS)


def _columns(rows: list[dict[str, Any]]) -> dict[str, pa.Array]:
    return {name: pa.array([row[name] for row in rows], pa.string()) for name in PER_ROW}


@settings(max_examples=200, deadline=None)
@given(st.lists(per_row, min_size=1, max_size=6), shared, keys, prev, st.integers(2, 10**9))
def test_seal_columns_is_seal_many(
    rows: list[dict[str, Any]],
    common: dict[str, Any],
    key: bytes | None,
    prev_hash: str,
    first: int,
) -> None:
    records = seal_many(
        [{**row, **common, "seq": first + i} for i, row in enumerate(rows)], prev_hash, key
    )
    sealed = seal_columns(first, prev_hash, key, common, _columns(rows))
    assert sealed.hashes == [record.hash for record in records]
    assert sealed.prev_hashes == [record.prev_hash for record in records]
    assert sealed.macs == [record.mac for record in records]


def test_the_first_record_follows_genesis() -> None:
    common = {"at": "2026-11-29T10:00:00.000000Z", "actor": "a", "command": "stage", "inputs": {}}
    rows = _columns([dict.fromkeys(PER_ROW, "x")])
    assert seal_columns(1, GENESIS, None, common, rows).prev_hashes == [GENESIS]
    with pytest.raises(ValueError, match="record 1 must follow GENESIS"):
        seal_columns(2, GENESIS, None, common, rows)
    with pytest.raises(ValueError, match="'at'"):
        seal_columns(1, GENESIS, None, {**common, "at": "yesterday"}, rows)
