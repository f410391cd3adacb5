"""Bulk reads and writes on both databases: values that hold JSON's and SQL's own
characters go through unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from migrate.cli import internal_error_text
from migrate.store import bulk
from migrate.store.engine import make_engine, upgrade

AWKWARD = ["plain", "with, comma", 'with "quote"', "back\\slash", "é ü 💡", "", "x' OR '1'='1"]


@pytest.fixture
def store(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_rows_where_in_finds_exactly_the_values_asked(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "CHUNK", 3)  # several chunks
    rows = pa.table(
        {
            "supplier_mpid": pa.array([*AWKWARD, "other"]),
            "day": pa.array(["2026-11-29"] * (len(AWKWARD) + 1)).cast(pa.date32()),
            "used": pa.array(range(len(AWKWARD) + 1), pa.int32()),
        }
    )
    with store.begin() as connection:
        bulk.insert_new(connection, "capacity_use", rows, ["supplier_mpid", "day"])
        found = bulk.rows_where_in(
            connection, "capacity_use", ["supplier_mpid", "used"], "supplier_mpid", AWKWARD
        )
        assert sorted(found) == sorted((name, AWKWARD.index(name)) for name in AWKWARD)
        assert bulk.rows_where_in(connection, "capacity_use", ["used"], "supplier_mpid", []) == []


def test_a_row_already_there_fails_the_whole_transaction(store: Engine) -> None:
    def rows(names: list[str]) -> pa.Table:
        return pa.table(
            {
                "supplier_mpid": pa.array(names),
                "day": pa.array(["2026-11-29"] * len(names)).cast(pa.date32()),
                "used": pa.array([1] * len(names), pa.int32()),
            }
        )

    with store.begin() as connection:
        bulk.insert_new(connection, "capacity_use", rows(["A"]), ["supplier_mpid", "day"])
    with pytest.raises(bulk.RowsAlreadyPresent, match="1 row"), store.begin() as connection:
        bulk.insert_new(connection, "capacity_use", rows(["B", "A"]), ["supplier_mpid", "day"])
    with store.begin() as connection:
        found = bulk.rows_where_in(
            connection, "capacity_use", ["supplier_mpid"], "supplier_mpid", ["A", "B"]
        )
    assert found == [("A",)]


def test_a_database_error_does_not_show_the_values_bound(store: Engine) -> None:
    with pytest.raises(DBAPIError) as failed, store.begin() as connection:
        connection.execute(
            text("INSERT INTO batches (name) VALUES (:name)"), {"name": "MPAN-1312345678907"}
        )
    shown = internal_error_text(failed.value)
    assert "MPAN-1312345678907" not in shown  # PostgreSQL's DETAIL would echo the row
    assert shown.startswith(("IntegrityError", "NotNullViolation"))
    assert "1312345678907" not in str(failed.value).split("DETAIL")[0]  # not bound, hidden
