"""Each cohort rule on small installations built for it: every reason that applies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.cohort.loader import COHORTS
from migrate.cohort.spec import CohortRules
from migrate.ingest import ingest
from migrate.validate import DeviceModels, Validation, validate

HEADER = (
    "Site ID;Device Type;Device EUI;Make;Model;Firmware;Serial No;MPxN;"
    "Install Date;Supplier;Status;Notes"
)
RULES = """
name: test
smso: [LG-SMSO]
modes: [ACTIVE]
window: {start: 2020-01-01, end: 2020-12-31}
firmware_order: {Landis+Gyr: dotted}
cpl: {cohorts: [IOC]}
combinations:
  - id: C1
    smso: LG-SMSO
    first_listed: 2019-06-01
    devices:
      CHF: {manufacturer: Landis+Gyr, model: LG-CH1, firmware: 3.1.0}
      ESME: {manufacturer: Landis+Gyr, model: E470-S1, firmware: 2.1.4}
  - id: C2
    smso: LG-SMSO
    first_listed: 2019-06-01
    devices:
      CHF: {manufacturer: Landis+Gyr, model: LG-CH1, firmware: 3.1.0}
      ESME: {manufacturer: Landis+Gyr, model: E470-S1, firmware: 2.1.4}
      GSME: {manufacturer: Landis+Gyr, model: G470-S1, firmware: 1.1.0}
  - id: C3
    smso: LG-SMSO
    first_listed: 2020-06-01
    devices:
      CHF: {manufacturer: Landis+Gyr, model: LG-CH1, firmware: 3.1.0}
      GSME: {manufacturer: Landis+Gyr, model: G470-S1, firmware: 1.1.0}
"""
MPANS = ["1312345678907", "1030006718997", "2000012345672", "2300123456784", "1200000000002"]
_eui = iter(range(1, 10_000))


def row(
    site: str,
    kind: str,
    model: str,
    firmware: str = "",
    mpxn: str = "",
    status: str = "Live",
    make: str = "Landis+Gyr",
    eui: str | None = None,
) -> str:
    if eui is None:
        digits = f"70b3d5{next(_eui):010x}"
        eui = "-".join(digits[i : i + 2] for i in range(0, 16, 2))
    return f"{site};{kind};{eui};{make};{model};{firmware};;{mpxn};01/02/2016;LOND;{status};"


def hub(site: str, firmware: str = "V3.1.0", **kw: str) -> str:
    return row(site, "Comms Hub", "LG-CH1", firmware, **kw)


def meter(site: str, mpan: str, firmware: str = "V2.1.4", **kw: str) -> str:
    return row(site, "Electricity Meter", "E470-S1", firmware, mpan, **kw)


def gas(site: str, mprn: str = "3938424403", firmware: str = "V1.1.0", **kw: str) -> str:
    return row(site, "Gas Meter", "G470-S1", firmware, mprn, **kw)


@pytest.fixture
def rules(tmp_path: Path) -> CohortRules:
    path = tmp_path / "test.yaml"
    path.write_text(RULES)
    return COHORTS.load_file(path)


@pytest.fixture
def check(
    write_text: Callable[..., Path], rules: CohortRules
) -> Callable[..., dict[str, list[str]]]:
    def run(lines: list[str], as_of: dt.date | None = None) -> dict[str, list[str]]:
        ingested = ingest([write_text("x.csv", [HEADER, *lines])], "landis_ioc_devices")
        result: Validation = validate(ingested.installations, ingested.devices, rules, as_of)
        # The same, told by the ingest which installation each device is in.
        linked = validate(
            ingested.installations, ingested.devices, rules, as_of, ingested.device_links
        )
        assert linked.installations.equals(result.installations)
        assert linked.findings.equals(result.findings)
        return {r["installation_id"]: r["reasons"] for r in result.installations.to_pylist()}

    return run


def test_an_exact_combination_is_eligible_and_named(
    write_text: Callable[..., Path], rules: CohortRules
) -> None:
    path = write_text(
        "x.csv", [HEADER, hub("A"), meter("A", MPANS[0]), row("A", "In Home Display", "Eco")]
    )
    ingested = ingest([path], "landis_ioc_devices")
    result = validate(ingested.installations, ingested.devices, rules)
    installation = result.installations.to_pylist()[0]
    assert installation["eligible"] is True
    assert installation["reasons"] == []
    assert installation["combination"] == "C1"
    assert installation["models"] == "LG-CH1 + E470-S1"


def test_manufacturer_is_compared_case_insensitively(check: Callable) -> None:
    lines = [hub("A", make="LANDIS+GYR"), meter("A", MPANS[0], make="landis+gyr")]
    assert check(lines) == {"A": []}


def test_hub_count(check: Callable) -> None:
    lines = [meter("A", MPANS[0]), hub("B"), hub("B"), meter("B", MPANS[1])]
    reasons = check(lines)
    assert reasons["A"] == ["NO_COMMS_HUB", "COMBINATION_NOT_LISTED"]
    assert "MULTIPLE_COMMS_HUBS" in reasons["B"]


def test_a_meter_without_its_mpxn(check: Callable) -> None:
    assert check([hub("A"), meter("A", "")])["A"] == ["MPXN_MISSING"]


def test_firmware_older_than_listed_needs_an_upgrade(check: Callable) -> None:
    reasons = check([hub("A", firmware="V3.0.2"), meter("A", MPANS[0])])
    assert reasons["A"] == ["FIRMWARE_UPGRADE_REQUIRED"]


def test_firmware_newer_than_listed_and_unreadable_firmware_are_told_apart(
    check: Callable,
) -> None:
    reasons = check(
        [
            hub("A", firmware="V9.0.0"),
            meter("A", MPANS[0]),
            hub("B"),
            meter("B", MPANS[1], firmware="V2.1.4.0.1"),
        ]
    )
    assert reasons["A"] == ["FIRMWARE_NOT_LISTED"]
    assert reasons["B"] == ["FIRMWARE_UNRECOGNISED"]


def test_a_model_on_no_combination(check: Callable) -> None:
    lines = [hub("A"), row("A", "Electricity Meter", "E999", "V1.0", MPANS[0])]
    assert check(lines)["A"] == ["DMC_NOT_ELIGIBLE"]


def test_listed_devices_in_an_unlisted_set(check: Callable) -> None:
    lines = [hub("A"), meter("A", MPANS[0]), row("A", "Prepayment Interface", "E470-S1", "V2.1.4")]
    assert check(lines)["A"] == ["DMC_NOT_ELIGIBLE"]
    assert check([hub("B"), gas("B")], as_of=dt.date(2020, 1, 1))["B"] == [
        "COMBINATION_NOT_YET_LISTED"
    ]
    assert check([hub("C"), gas("C")], as_of=dt.date(2020, 7, 1))["C"] == []


def test_the_same_device_in_two_installations_excludes_both(check: Callable) -> None:
    shared = "70-b3-d5-aa-bb-cc-dd-ee"
    lines = [
        hub("A"),
        meter("A", MPANS[0], eui=shared),
        hub("B"),
        meter("B", MPANS[1], eui=shared),
        hub("C"),
        meter("C", MPANS[2]),
    ]
    reasons = check(lines)
    assert reasons == {"A": ["DUPLICATE_DEVICE"], "B": ["DUPLICATE_DEVICE"], "C": []}


def test_the_same_mpan_in_two_installations_excludes_both(check: Callable) -> None:
    lines = [hub("A"), meter("A", MPANS[0]), hub("B"), meter("B", MPANS[0])]
    assert check(lines) == {"A": ["DUPLICATE_MPXN"], "B": ["DUPLICATE_MPXN"]}


def test_dormant_installations_are_not_in_an_active_cohort(check: Callable) -> None:
    lines = [hub("A", status="Dormant"), meter("A", MPANS[0], status="Dormant")]
    assert check(lines)["A"] == ["DORMANT"]


def test_an_installation_with_a_quarantined_row_is_data_invalid_never_shorter(
    check: Callable,
) -> None:
    lines = [hub("A"), meter("A", MPANS[0]), gas("A", mprn="1.2E+09")]
    assert check(lines)["A"] == ["DATA_INVALID"]


def test_every_reason_is_kept_not_only_the_first(check: Callable) -> None:
    lines = [
        hub("A", status="Dormant", firmware="V3.0.2"),
        hub("A", status="Dormant"),
        meter("A", "", status="Dormant"),
    ]
    assert check(lines)["A"] == [
        "MULTIPLE_COMMS_HUBS",
        "MPXN_MISSING",
        "DORMANT",
        "FIRMWARE_UPGRADE_REQUIRED",
    ]


VALUE = st.one_of(st.none(), st.sampled_from(["CHF", "ESME", "Landis+Gyr", "landis+gyr", "1.0"]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.tuples(VALUE, VALUE, VALUE, VALUE), max_size=8), max_size=4))
def test_device_models_give_back_each_devices_own_values(
    chunks: list[list[tuple[str | None, ...]]],
) -> None:
    """Distinct models over a table read in several chunks, nulls included: each device's
    model is its own four values, and no two models are the same four."""
    names = DeviceModels.COLUMNS
    table = pa.Table.from_batches(
        [
            pa.record_batch(
                [pa.array([row[i] for row in rows], pa.string()) for i in range(4)], names=names
            )
            for rows in chunks
        ],
        schema=pa.schema([(name, pa.string()) for name in names]),
    )
    models = DeviceModels.of(table)
    distinct = [tuple(row.values()) for row in models.table.to_pylist()]
    assert len(set(distinct)) == len(distinct)
    devices = [row for rows in chunks for row in rows]
    assert [distinct[code] for code in models.of_device] == devices
