"""read_table: query results as Arrow columns of the types asked for, NULL and empty text
told apart, and values holding the separators read the ordinary way, on both databases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pyarrow as pa
import pytest
from sqlalchemy import Engine, insert, select

from migrate.store.columns import read_table
from migrate.store.engine import make_engine, upgrade
from migrate.store.schema import batches, installations, requests

SCHEMA = pa.schema(
    [
        pa.field("installation_id", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("retryable", pa.bool_()),
        pa.field("attempts", pa.int64()),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)
AT = dt.datetime(2026, 11, 29, 10, 4, 6, 123456, tzinfo=dt.UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(batches).values(
                name="b1",
                cohort="moc",
                plan_sha256="0" * 64,
                plan_path="p",
                inputs="{}",
                created_at=AT,
                created_by="t",
            )
        )
    yield engine
    engine.dispose()


def _add(engine: Engine, rows: list[dict[str, object]]) -> None:
    with engine.begin() as connection:
        for n, row in enumerate(rows):
            connection.execute(
                insert(installations).values(batch="b1", installation_id=row["installation_id"])
            )
            connection.execute(
                insert(requests).values(
                    idempotency_key=f"k{n}",
                    fingerprint="f",
                    batch="b1",
                    cohort="moc",
                    state="FAILED",
                    payload="{}",
                    attempts=n,
                    updated_at=AT,
                    **row,
                )
            )


def _read(engine: Engine) -> list[dict[str, object]]:
    query = select(*(requests.c[name] for name in SCHEMA.names)).order_by(requests.c.attempts)
    with engine.connect() as connection:
        table = read_table(connection, query, SCHEMA)
    assert table.schema == SCHEMA
    return table.to_pylist()


def test_types_nulls_and_empty_text(store: Engine) -> None:
    _add(
        store,
        [
            {"installation_id": "A", "reason": None, "retryable": True},
            {"installation_id": "B", "reason": "", "retryable": False},
            {"installation_id": "C", "reason": "n", "retryable": None},
            {"installation_id": 'D,"quoted"', "reason": "s", "retryable": None},
        ],
    )
    found = _read(store)
    assert [(r["installation_id"], r["reason"], r["retryable"], r["attempts"]) for r in found] == [
        ("A", None, True, 0),
        ("B", "", False, 1),
        ("C", "n", None, 2),
        ('D,"quoted"', "s", None, 3),
    ]
    assert {r["updated_at"] for r in found} == {AT}


def test_values_holding_the_separators_come_back_whole(store: Engine) -> None:
    rows = [
        {"installation_id": "A\x1fB", "reason": "x\x1ey", "retryable": None},
        {"installation_id": "C", "reason": "\x1e", "retryable": True},
    ]
    _add(store, rows)
    assert [(r["installation_id"], r["reason"]) for r in _read(store)] == [
        ("A\x1fB", "x\x1ey"),
        ("C", "\x1e"),
    ]


def test_no_rows_is_an_empty_table(store: Engine) -> None:
    assert _read(store) == []
