"""The comparison on hand-made sides: which category wins, and when device values differ."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from migrate.plan_reader import EXCLUDED_SCHEMA
from migrate.reconcile.compare import Category, Discrepancy, compare
from migrate.reconcile.sources import (
    OTHER_BATCH_SCHEMA,
    REQUEST_SCHEMA,
    SIDE_DEVICE_COLUMNS,
    STORE_DEVICE_SCHEMA,
    MappedSide,
    SourceFile,
    StoreSide,
)

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
FILE = SourceFile("f", 0, "0" * 64)
HUB, METER, GAS, IHD = "00-00-00-00-00-00-00-01", "00-00-00-00-00-00-00-02", "03", "04"


def store(requests: list[dict[str, Any]], devices: list[tuple[Any, ...]]) -> StoreSide:
    rows = [
        {
            "supplier_mpid": "SUPA",
            "reason": None,
            "retryable": None,
            "attempts": 1,
            "sends": 1,
            "updated_at": NOW,
            **row,
        }
        for row in requests
    ]
    return StoreSide(
        "b1",
        "moc",
        FILE,
        pa.Table.from_pylist(rows, schema=REQUEST_SCHEMA),
        pa.Table.from_pylist(
            [dict(zip(STORE_DEVICE_SCHEMA.names, d, strict=True)) for d in devices],
            schema=STORE_DEVICE_SCHEMA,
        ),
        EXCLUDED_SCHEMA.empty_table(),
    )


def side(devices: list[tuple[Any, ...]], provides: set[str]) -> MappedSide:
    table = pa.Table.from_pylist(
        [dict(zip(SIDE_DEVICE_COLUMNS, d, strict=True)) for d in devices],
        schema=pa.schema([(name, pa.string()) for name in SIDE_DEVICE_COLUMNS]),
    )
    ids = sorted({d[0] for d in devices})
    return MappedSide(
        FILE,
        FILE,
        "m",
        {},
        table,
        pa.table(
            {
                "installation_id": pa.array(ids, pa.string()),
                "quarantined_rows": pa.array([0] * len(ids), pa.int64()),
            }
        ),
        pa.table({}),
        frozenset(provides),
    )


def run(s: StoreSide, dcc: MappedSide, extract: MappedSide | None = None) -> dict[str, Any]:
    result = compare(
        s,
        dcc,
        extract,
        OTHER_BATCH_SCHEMA.empty_table(),
        now=NOW,
        stuck_after=dt.timedelta(hours=1),
    )
    return {row["installation_id"]: row for row in result.installations.to_pylist()} | {
        "devices": result.devices.to_pylist()
    }


ALL = {"firmware_version", "mpxn", "smi_status"}


def test_missing_from_the_inventory_wins_over_what_the_extract_says() -> None:
    s = store([{"installation_id": "A", "state": "MIGRATED"}], [("A", HUB, "CHF", "1", None)])
    extract = side([("A", HUB, "CHF", "2", None, "Commissioned")], ALL)
    found = run(s, side([], ALL), extract)
    assert found["A"]["category"] == Category.MISSING_FROM_INVENTORY
    assert found["A"]["discrepancies"] == [Discrepancy.FIRMWARE_DIFFERS]


def test_the_device_set_comes_before_the_firmware() -> None:
    s = store(
        [{"installation_id": "A", "state": "MIGRATED"}],
        [("A", HUB, "CHF", "1", None), ("A", METER, "ESME", "1", "1312345678907")],
    )
    dcc = side([("A", HUB, "CHF", "2", None, "Commissioned")], ALL)
    found = run(s, dcc)
    assert found["A"]["category"] == Category.DEVICE_SET_DIFFERS
    assert found["A"]["discrepancies"] == [
        Discrepancy.DEVICE_SET_DIFFERS,
        Discrepancy.FIRMWARE_DIFFERS,
    ]


def test_blank_values_differ_only_where_the_device_carries_them() -> None:
    s = store(
        [{"installation_id": "A", "state": "MIGRATED"}],
        [
            ("A", HUB, "CHF", "1", "1312345678907"),
            ("A", METER, "ESME", "1", "1312345678907"),
            ("A", IHD, "IHD", None, None),
        ],
    )
    dcc = side(
        [
            ("A", HUB, "CHF", "1", None, "Commissioned"),  # a hub without its MPxN: fine
            ("A", METER, "ESME", None, "1312345678907", "Commissioned"),  # firmware lost
            ("A", IHD, "IHD", "7", None, "Commissioned"),  # an IHD carries no firmware
        ],
        ALL,
    )
    found = run(s, dcc)
    assert [(d["device_id"], d["discrepancies"]) for d in found["devices"]] == [
        (METER, [Discrepancy.FIRMWARE_DIFFERS])
    ]
    dcc_without_meter_mpxn = side(
        [
            ("A", HUB, "CHF", "1", None, "Commissioned"),
            ("A", METER, "ESME", "1", None, "Commissioned"),
            ("A", IHD, "IHD", None, None, "Commissioned"),
        ],
        ALL,
    )
    found = run(s, dcc_without_meter_mpxn)
    assert found["A"]["category"] == Category.MPXN_DIFFERS


def test_a_side_that_does_not_read_a_field_is_not_compared_on_it() -> None:
    s = store(
        [{"installation_id": "A", "state": "MIGRATED"}],
        [("A", METER, "ESME", "1", "1312345678907")],
    )
    dcc = side([("A", METER, "ESME", "9", None, None)], set())
    assert run(s, dcc)["A"]["category"] == Category.MIGRATED_MATCHING


def test_a_status_counts_on_the_extract_only_once_migrated() -> None:
    s = store(
        [
            {"installation_id": "A", "state": "MIGRATED"},
            {"installation_id": "B", "state": "FAILED", "retryable": True},
        ],
        [("A", HUB, "CHF", "1", None), ("B", GAS, "CHF", "1", None)],
    )
    dcc = side([("A", HUB, "CHF", "1", None, "commissioned")], ALL)  # any case
    extract = side(
        [("A", HUB, "CHF", "1", None, "Suspended"), ("B", GAS, "CHF", "1", None, "Suspended")],
        ALL,
    )
    found = run(s, dcc, extract)
    assert found["A"]["category"] == Category.NOT_COMMISSIONED
    assert found["B"]["category"] == Category.FAILED_RETRYABLE
    assert found["B"]["discrepancies"] == []


def test_a_device_the_dcc_lists_twice_is_listed_twice_and_compared_once() -> None:
    """Two requests enrolled one installation (a second plan staged it under a new key while
    the DCC held the first): the DCC lists its devices once for each. Compared on its first
    listing only, it matched, and the double enrolment went unseen."""
    s = store(
        [
            {"installation_id": "A", "state": "MIGRATED"},
            {"installation_id": "B", "state": "MIGRATED"},
        ],
        [("A", HUB, "CHF", "1", None), ("B", HUB, "CHF", "1", None)],
    )
    dcc = side(
        [
            ("A", HUB, "CHF", "1", None, "Commissioned"),
            ("A", HUB, "CHF", "2", None, "Suspended"),
            ("B", HUB, "CHF", "1", None, "Commissioned"),
        ],
        ALL,
    )
    found = run(s, dcc)
    assert found["A"]["category"] == Category.LISTED_TWICE
    assert found["A"]["discrepancies"] == [Discrepancy.LISTED_TWICE]  # the first row compared
    assert found["A"]["dcc_devices"] == 2
    assert found["B"]["category"] == Category.MIGRATED_MATCHING
