"""Every category and discrepancy, planted in a staged batch and its DCC inventory, found
where it was planted; the totals add up; exit-code semantics through `discrepant`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from reconciliation import NOW, Cohort

from migrate.reconcile.compare import Category, Discrepancy


def _by_id(lines: list[dict[str, Any]], installation: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["installation_id"] == installation]


def _installations(result: Any) -> dict[str, dict[str, Any]]:
    table = result.report.installations
    return {row["installation_id"]: row for row in table.to_pylist()}


def test_a_batch_that_migrated_as_asked_is_not_discrepant(cohort: Cohort) -> None:
    ids = cohort.ids()
    cohort.set(ids, "MIGRATED")
    result = cohort.reconcile(cohort.write_inventory(cohort.inventory_lines(ids)))
    assert not result.discrepant
    assert result.discrepant_installations == 0
    assert result.by_category[Category.MIGRATED_MATCHING] == len(ids)
    assert result.by_category[Category.EXCLUDED] == result.installations - len(ids)
    assert sum(result.by_category.values()) == result.installations
    assert result.audit_verified and result.checks_hold


@pytest.fixture
def planted(cohort: Cohort) -> dict[str, Any]:
    """One or more installations of every category and discrepancy; returns where."""
    ids = cohort.ids()
    pool = iter(ids[20:])

    def having(device_type: str) -> str:
        return next(
            i for i in pool if any(d["device_type"] == device_type for d in cohort.devices(i))
        )

    where: dict[str, Any] = {
        "missing": ids[0:2],
        "device_missing": ids[2],
        "device_extra": ids[3],
        "suspended": ids[4],
        "firmware": ids[5],
        "stuck_submitting": ids[6],
        "stuck_accepted": ids[7],
        "in_flight": ids[8],
        "retryable": ids[9:11],
        "permanent": ids[11],
        "permanent_unflagged": ids[12],
        "permanent_listed": ids[13],
        "staged": ids[14:16],
        "withdrawn": ids[16],
        "gt01": having("GSME"),
        "mpxn": [having("ESME"), having("ESME")],
    }
    others = cohort.stage_other_batch(2)
    where["other_batch"] = others[0]
    migrated = [
        i
        for i in ids
        if i not in where["retryable"] + where["staged"]
        and i
        not in (
            where["stuck_submitting"],
            where["stuck_accepted"],
            where["in_flight"],
            where["permanent"],
            where["permanent_unflagged"],
            where["permanent_listed"],
            where["withdrawn"],
        )
    ]
    cohort.set(migrated, "MIGRATED")
    cohort.set([where["gt01"]], "MIGRATED", reason="GAS_HAN_ERROR_GT01")
    cohort.set([where["stuck_submitting"]], "SUBMITTING")
    cohort.set([where["stuck_accepted"]], "ACCEPTED")
    cohort.set([where["in_flight"]], "ACCEPTED", updated_at=NOW - dt.timedelta(minutes=10))
    cohort.set(where["retryable"], "FAILED", reason="NO_WAN_DURING_MIGRATION", retryable=True)
    cohort.set([where["permanent"]], "FAILED", reason="MISSING_MASTER_KEYS", retryable=False)
    cohort.set([where["permanent_unflagged"]], "FAILED", reason="MAX_ATTEMPTS_EXCEEDED")
    cohort.set([where["permanent_listed"]], "FAILED", reason="DCC_REJECTED", retryable=False)
    cohort.set([where["withdrawn"]], "WITHDRAWN")

    listed = [i for i in migrated if i not in where["missing"]]
    lines = cohort.inventory_lines([*listed, where["permanent_listed"]])
    lines = [line for line in lines if line["installation_id"] != where["device_missing"]] + (
        _by_id(lines, where["device_missing"])[:-1]
    )
    extra = dict(_by_id(lines, where["device_extra"])[0])
    lines.append({**extra, "device_id": "00-DB-12-FF-FF-FF-FF-01", "device_type": "IHD"})
    for line in _by_id(lines, where["suspended"]):
        line["status"] = "Suspended"
    for line in _by_id(lines, where["gt01"]):
        if line["device_type"] == "GSME":
            line["status"] = "InstalledNotCommissioned"
    _by_id(lines, where["firmware"])[0]["firmware_version"] = "9.9.9"
    first, second = (
        next(line for line in _by_id(lines, i) if line["device_type"] == "ESME")
        for i in where["mpxn"]
    )
    first["mpxn"], second["mpxn"] = second["mpxn"], first["mpxn"]
    excluded = json.loads((cohort.folder / "plan.json").read_text())["excluded"][0]
    where["excluded_listed"] = excluded["installation_id"]
    lines.append(
        {**lines[0], "installation_id": "SECZZZ0001", "device_id": "00-DB-12-FF-FF-FF-FF-02"}
    )
    lines.append(
        {
            **lines[0],
            "installation_id": where["excluded_listed"],
            "device_id": "00-DB-12-FF-FF-FF-FF-03",
        }
    )
    lines.append(
        {
            **lines[0],
            "installation_id": where["other_batch"],
            "device_id": "00-DB-12-FF-FF-FF-FF-04",
        }
    )
    where["inventory"] = cohort.write_inventory(lines)
    return where


def test_every_category_is_found_where_it_was_planted(
    cohort: Cohort, planted: dict[str, Any]
) -> None:
    result = cohort.reconcile(planted["inventory"], inventory_mapping="inventory_with_mpxn")
    found = _installations(result)
    expected = {
        **dict.fromkeys(planted["missing"], Category.MISSING_FROM_INVENTORY),
        planted["device_missing"]: Category.DEVICE_SET_DIFFERS,
        planted["device_extra"]: Category.DEVICE_SET_DIFFERS,
        planted["suspended"]: Category.NOT_COMMISSIONED,
        planted["gt01"]: Category.NOT_COMMISSIONED,
        planted["firmware"]: Category.FIRMWARE_DIFFERS,
        **dict.fromkeys(planted["mpxn"], Category.MPXN_DIFFERS),
        planted["stuck_submitting"]: Category.STUCK,
        planted["stuck_accepted"]: Category.STUCK,
        planted["in_flight"]: Category.IN_FLIGHT,
        **dict.fromkeys(planted["retryable"], Category.FAILED_RETRYABLE),
        planted["permanent"]: Category.FAILED_PERMANENT,
        planted["permanent_unflagged"]: Category.FAILED_PERMANENT,
        planted["permanent_listed"]: Category.FAILED_PERMANENT,
        **dict.fromkeys(planted["staged"], Category.AWAITING_COMMIT),
        planted["withdrawn"]: Category.WITHDRAWN,
        "SECZZZ0001": Category.NOT_REQUESTED,
        planted["excluded_listed"]: Category.NOT_REQUESTED,
        planted["other_batch"]: Category.OTHER_BATCH,
    }
    assert {i: found[i]["category"] for i in expected} == expected
    planted_ids = set(expected)
    rest = {row["category"] for i, row in found.items() if i not in planted_ids}
    assert rest == {Category.MIGRATED_MATCHING, Category.EXCLUDED}
    assert found[planted["permanent_listed"]]["discrepancies"] == [
        Discrepancy.IN_INVENTORY_NOT_MIGRATED
    ]
    assert found[planted["excluded_listed"]]["excluded_reasons"]
    assert found[planted["other_batch"]]["other_batch"] == "b2"
    assert found[planted["stuck_accepted"]]["waiting_since"] == "2026-12-01T07:00:00.000000Z"
    assert found[planted["retryable"][0]]["waiting_since"] is None
    assert result.discrepant and result.checks_hold
    assert sum(result.by_category.values()) == result.installations
    # Every installation of the batch, the plan's excluded ones and the inventory's, once.
    assert result.installations == len(cohort.ids()) + 94 + 2
    discrepant = {i for i, row in found.items() if row["discrepant"]}
    settled_planted = {planted["withdrawn"], planted["other_batch"]}
    assert discrepant == planted_ids - settled_planted


def test_device_rows_give_the_values_on_each_side(cohort: Cohort, planted: dict[str, Any]) -> None:
    result = cohort.reconcile(planted["inventory"], inventory_mapping="inventory_with_mpxn")
    devices = result.report.devices.to_pylist()
    by = {(row["installation_id"], row["device_id"]): row for row in devices}
    firmware = [row for row in devices if row["installation_id"] == planted["firmware"]]
    assert len(firmware) == 1 and firmware[0]["discrepancies"] == [Discrepancy.FIRMWARE_DIFFERS]
    assert firmware[0]["dcc_firmware"] == "9.9.9"
    assert firmware[0]["store_firmware"] not in (None, "9.9.9")
    extra = by[(planted["device_extra"], "00-DB-12-FF-FF-FF-FF-01")]
    assert (extra["on_store"], extra["on_dcc"]) == (False, True)
    missing = [row for row in devices if row["installation_id"] == planted["device_missing"]]
    assert [(row["on_store"], row["on_dcc"]) for row in missing] == [(True, False)]
    gas = [row for row in devices if row["installation_id"] == planted["gt01"]]
    assert [(row["device_type"], row["dcc_status"]) for row in gas] == [
        ("GSME", "InstalledNotCommissioned")
    ]
    swapped = [row for row in devices if row["installation_id"] in planted["mpxn"]]
    assert all(row["store_mpxn"] != row["dcc_mpxn"] for row in swapped) and len(swapped) == 2
    assert {row["discrepancies"][0] for row in swapped} == {Discrepancy.MPXN_DIFFERS}
    counts = result.by_discrepancy
    assert counts[Discrepancy.DEVICE_SET_DIFFERS] == {"installations": 2, "devices": 2}
    assert counts[Discrepancy.IN_INVENTORY_NOT_MIGRATED]["installations"] == 1


def test_the_simulators_inventory_has_no_mpxn_and_is_not_compared_on_it(
    cohort: Cohort, planted: dict[str, Any]
) -> None:
    result = cohort.reconcile(planted["inventory"])  # the dcc_inventory mapping
    found = _installations(result)
    assert all(found[i]["category"] == Category.MIGRATED_MATCHING for i in planted["mpxn"])
    assert result.report.head["inventory"]["compared_fields"] == ["firmware_version", "smi_status"]


def test_a_stuck_threshold_decides_stuck_or_in_flight(
    cohort: Cohort, planted: dict[str, Any]
) -> None:
    result = cohort.reconcile(planted["inventory"], stuck_after=dt.timedelta(minutes=5))
    assert _installations(result)[planted["in_flight"]]["category"] == Category.STUCK
    result = cohort.reconcile(planted["inventory"], stuck_after=dt.timedelta(hours=6))
    found = _installations(result)
    assert found[planted["stuck_accepted"]]["category"] == Category.IN_FLIGHT


def test_the_supplier_extract_is_the_third_side(cohort: Cohort, examples: Any) -> None:
    """The warehouse report is the same estate weeks later: its drift shows against the
    store even where the DCC agrees with the store."""
    ids = cohort.ids()
    cohort.set(ids, "MIGRATED")
    result = cohort.reconcile(
        cohort.write_inventory(cohort.inventory_lines(ids)),
        extract=examples / "warehouse_estate_firmware.parquet",
        extract_mapping="warehouse_estate_firmware",
    )
    found = _installations(result)
    devices = result.report.devices.to_pylist()
    assert result.discrepant
    drifted = {row["installation_id"] for row in devices}
    assert drifted and all(found[i]["category"] != Category.MIGRATED_MATCHING for i in drifted)
    firmware = [r for r in devices if Discrepancy.FIRMWARE_DIFFERS in r["discrepancies"]]
    assert firmware and all(
        r["store_firmware"] == r["dcc_firmware"] != r["extract_firmware"] for r in firmware
    )
    status = [r for r in devices if Discrepancy.NOT_COMMISSIONED in r["discrepancies"]]
    assert status and all(r["extract_status"] != "Commissioned" for r in status)
    assert result.report.head["extract"]["read"]["rows_quarantined"] == 6
    assert len(result.report.unreadable.to_pylist()) == 6


def test_the_extract_needs_its_mapping(cohort: Cohort, examples: Any) -> None:
    from migrate.errors import ConfigError

    with pytest.raises(ConfigError, match="extract and its mapping"):
        cohort.reconcile(cohort.write_inventory([]), extract=examples / "x.parquet")


def test_an_empty_inventory_leaves_every_migrated_one_missing(cohort: Cohort) -> None:
    ids = cohort.ids()
    cohort.set(ids, "MIGRATED")
    result = cohort.reconcile(cohort.write_inventory([]))
    assert result.by_category[Category.MISSING_FROM_INVENTORY] == len(ids)
    assert result.discrepant
