"""Ingest end to end on real files: every row accounted for, every planted defect found."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from migrate.errors import ConfigError, InputError
from migrate.ingest import OUTPUT_FILES, ingest, write_outputs
from migrate.sim.extract_generator import generate_long_extract

LANDIS = "landis_ioc_devices"
HEADER = (
    "Site ID;Device Type;Device EUI;Make;Model;Firmware;Serial No;MPxN;"
    "Install Date;Supplier;Status;Notes"
)
HUB = (
    "LG1;Comms Hub;70-b3-d5-00-00-00-00-01;Landis+Gyr;LG-CH1;V3.1.0;;1312345678907;"
    "22/05/2016;LOND;Live;"
)
METER = (
    "LG1;Electricity Meter;70-b3-d5-00-00-00-00-02;Landis+Gyr;E470-S1;V2.1.4;L16KA992700;"
    "1312345678907;22/05/2016;LOND;Live;"
)
GAS = (
    "LG1;Gas Meter;70-b3-d5-00-00-00-00-03;Landis+Gyr;G470-S1;V1.1.0;G4L201689677431;"
    "3938424403;22/05/2016;LOND;Live;"
)

# Which quarantine reason each planted defect must produce.
EXPECTED_REASON = {
    "truncated_eui": "INVALID_EUI64",
    "scientific_mpan": "PRECISION_LOST",
    "bad_mpan_check_digit": "INVALID_MPAN_CHECK_DIGIT",
    "unknown_device_type": "UNKNOWN_VALUE",
    "impossible_date": "INVALID_DATE",
    "ragged_row": "RAGGED_ROW",
    "missing_firmware": "MISSING_VALUE",
}


def test_every_planted_defect_is_found_and_every_row_accounted_for(tmp_path: Path) -> None:
    generated = generate_long_extract(tmp_path / "estate.csv", 20_000, seed=7, defect_rate=0.02)
    result = ingest([generated.path], LANDIS)
    summary = result.summary

    assert summary.rows_read == generated.rows
    assert summary.balanced
    assert summary.duplicates == generated.planted["duplicate_row"]
    for kind, reason in EXPECTED_REASON.items():
        assert summary.quarantined_by_reason.get(reason, 0) == generated.planted[kind], kind
    planted_rejects = sum(generated.planted[kind] for kind in EXPECTED_REASON)
    assert summary.rows_quarantined == planted_rejects
    assert summary.devices == summary.rows_accepted
    assert summary.installations == generated.installations


def test_quarantine_names_file_row_column_and_value(
    write_text: Callable[..., Path],
) -> None:
    bad_date = METER.replace("22/05/2016", "31/02/2016")
    path = write_text("lg.csv", [HEADER, HUB, bad_date, GAS], encoding="cp1252", newline="\r\n")
    result = ingest([path], LANDIS)
    rows = result.quarantine.to_pylist()
    assert rows == [
        {
            "source_file": str(path),
            "source_row": 3,
            "installation_id": "LG1",
            "column": "Install Date",
            "value": "31/02/2016",
            "reason": "INVALID_DATE",
        }
    ]
    installation = result.installations.to_pylist()[0]
    assert installation["quarantined_rows"] == 1
    assert installation["n_chf"] == 1 and installation["n_esme"] == 0


def test_ragged_rows_keep_later_row_numbers_exact(write_text: Callable[..., Path]) -> None:
    ragged = HUB.replace("LG1", "LG2") + ";extra"
    later = GAS.replace("31/", "01/")
    path = write_text("lg.csv", ["Estate export", "", HEADER, ragged, METER, later])
    result = ingest([path], LANDIS)
    quarantine = result.quarantine.to_pylist()
    assert [(q["source_row"], q["reason"]) for q in quarantine] == [(4, "RAGGED_ROW")]
    assert "Zo" not in (quarantine[0]["value"] or "")
    assert result.devices.column("source_row").to_pylist() == [5, 6]
    assert result.summary.rows_read == 3
    assert result.summary.balanced
    # The ragged row counts against its installation, which therefore shows as incomplete.
    listed = {i["installation_id"]: i for i in result.installations.to_pylist()}
    assert listed["LG2"]["quarantined_rows"] == 1 and listed["LG2"]["devices"] == 0
    assert quarantine[0]["installation_id"] == "LG2"


def test_duplicates_name_the_row_they_repeat_even_across_files(
    write_text: Callable[..., Path],
) -> None:
    first = write_text("a.csv", [HEADER, HUB, METER, METER])
    second = write_text("b.csv", [HEADER, GAS, HUB])
    result = ingest([first, second], LANDIS)
    assert result.duplicates.to_pylist() == [
        {
            "source_file": str(first),
            "source_row": 4,
            "duplicate_of_file": str(first),
            "duplicate_of_row": 3,
        },
        {
            "source_file": str(second),
            "source_row": 3,
            "duplicate_of_file": str(first),
            "duplicate_of_row": 2,
        },
    ]
    assert result.summary.rows_read == 5
    assert result.summary.rows_accepted == 3
    assert result.summary.balanced


def test_rows_differing_only_in_free_text_are_not_duplicates(
    write_text: Callable[..., Path],
) -> None:
    noted = HUB[:-1] + ";Tenant Zoë"
    path = write_text("lg.csv", [HEADER, HUB, noted], encoding="cp1252")
    result = ingest([path], LANDIS)
    assert result.summary.duplicates == 0
    assert result.summary.rows_accepted == 2


def test_rows_of_one_installation_that_disagree_are_quarantined(
    write_text: Callable[..., Path],
) -> None:
    dormant_meter = METER.replace(";Live;", ";Dormant;")
    path = write_text("lg.csv", [HEADER, HUB, dormant_meter, GAS])
    result = ingest([path], LANDIS)
    conflicts = result.quarantine.to_pylist()
    # Which row is right cannot be told: none is believed.
    assert [(c["source_row"], c["column"], c["value"], c["reason"]) for c in conflicts] == [
        (2, "(mode)", "ACTIVE", "CONFLICTING_INSTALLATION_FIELD"),
        (3, "(mode)", "DORMANT", "CONFLICTING_INSTALLATION_FIELD"),
        (4, "(mode)", "ACTIVE", "CONFLICTING_INSTALLATION_FIELD"),
    ]
    installation = result.installations.to_pylist()[0]
    assert installation["quarantined_rows"] == 3 and installation["devices"] == 0
    assert installation["mode"] is None  # disputed: no row's value is believed


def test_installation_takes_mpan_and_mprn_from_its_meters(
    write_text: Callable[..., Path],
) -> None:
    path = write_text("lg.csv", [HEADER, HUB, METER, GAS])
    installation = ingest([path], LANDIS).installations.to_pylist()[0]
    assert installation["mpan_core"] == "1312345678907"
    assert installation["mprn"] == "3938424403"
    assert installation["devices"] == 3
    assert (installation["n_chf"], installation["n_esme"], installation["n_gsme"]) == (1, 1, 1)


def test_an_installation_whose_rows_are_all_quarantined_is_still_listed(
    write_text: Callable[..., Path],
) -> None:
    path = write_text("lg.csv", [HEADER, HUB.replace("V3.1.0", "")])
    result = ingest([path], LANDIS)
    installation = result.installations.to_pylist()[0]
    assert installation["installation_id"] == "LG1"
    assert installation["devices"] == 0
    assert installation["quarantined_rows"] == 1


def test_outputs_are_written_whole(tmp_path: Path, write_text: Callable[..., Path]) -> None:
    path = write_text("lg.csv", [HEADER, HUB, METER, "LG9;Smart Plug" + HUB[13:]])
    result = ingest([path], LANDIS)
    out = tmp_path / "out"
    written = write_outputs(result, out)
    assert sorted(p.name for p in written) == sorted(OUTPUT_FILES)
    assert pq.read_table(out / "devices.parquet").num_rows == 2
    assert pq.read_table(out / "quarantine.parquet").column("reason").to_pylist() == [
        "UNKNOWN_VALUE"
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["balanced"] is True and summary["rows_read"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ingest-")]


def test_a_broken_file_stops_the_ingest_before_anything_is_written(
    tmp_path: Path, write_text: Callable[..., Path]
) -> None:
    good = write_text("good.csv", [HEADER, HUB])
    broken = write_text("broken.csv", ["Site ID;Something else", "LG2;x"])
    with pytest.raises(InputError) as caught:
        ingest([good, broken], LANDIS)
    assert caught.value.path == str(broken)
    assert "required columns missing" in caught.value.problem
    assert "Device EUI" in caught.value.problem


def test_unknown_mapping_is_a_configuration_error(write_text: Callable[..., Path]) -> None:
    path = write_text("lg.csv", [HEADER, HUB])
    with pytest.raises(ConfigError, match="unknown mapping 'nope'"):
        ingest([path], "nope")


SAMPLES = [
    ("landis_ioc_devices.csv", "landis_ioc_devices"),
    ("secure_moc_installations.csv", "secure_moc_installations"),
    ("edmi_foc_estate.xlsx", "edmi_foc_estate"),
    ("warehouse_estate_firmware.parquet", "warehouse_estate_firmware"),
]


@pytest.mark.parametrize(("extract", "mapping"), SAMPLES)
def test_sample_extracts_give_stable_counts(examples: Path, extract: str, mapping: str) -> None:
    """The bundled samples' counts, checked by hand once, pinned in a golden file."""
    golden = json.loads((Path(__file__).parent / "golden" / "sample_summaries.json").read_text())
    summary = ingest([examples / extract], mapping).summary.as_dict()
    summary.pop("files")
    assert summary == golden[extract]


def test_a_ragged_row_with_an_unknown_key_invents_no_installation(
    write_text: Callable[..., Path],
) -> None:
    path = write_text("lg.csv", [HEADER, HUB, METER, "LG00"])
    result = ingest([path], LANDIS)
    assert result.installations.column("installation_id").to_pylist() == ["LG1"]
    quarantine = result.quarantine.to_pylist()
    assert [(q["source_row"], q["reason"], q["installation_id"]) for q in quarantine] == [
        (4, "RAGGED_ROW", None)
    ]
    assert result.summary.balanced and result.summary.rows_quarantined == 1


def test_an_edmi_date_cell_with_a_time_of_day_is_its_date(tmp_path: Path) -> None:
    # Excel keeps a date as a number that may carry a fraction of a day: the workbook's
    # "Commissioned On" is still a date, not INVALID_DATE.
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Estate"
    header = ["Premises Ref", "Electricity MPAN", "Gas MPRN", "Hub EUI", "Hub Firmware"]
    header += ["Elec Meter EUI", "Elec Meter Model", "Elec Meter Firmware", "Elec Meter Serial"]
    header += ["Gas Meter EUI", "Gas Meter Make", "Gas Meter Model", "Gas Meter Firmware"]
    header += ["Gas Meter Serial", "PPMID EUI", "PPMID Firmware", "IHD EUI"]
    header += ["Commissioned On", "Mode", "Supplier"]
    sheet.append(header)
    row = dict.fromkeys(header, None)
    row.update(
        {
            "Premises Ref": "ED1",
            "Hub EUI": "00-1B-C5-23-0B-0B-18-F7",
            "Hub Firmware": "0x406",
            "Mode": "ACTIVE",
            "Supplier": "SWEB",
        }
    )
    for when in (dt.datetime(2015, 10, 1, 14, 30), dt.date(2015, 10, 2)):
        sheet.append(list({**row, "Commissioned On": when}.values()))
        row["Premises Ref"] = "ED2"
    path = tmp_path / "edmi.xlsx"
    book.save(path)

    result = ingest([path], "edmi_foc_estate")

    assert result.quarantine.num_rows == 0
    dates = result.installations.column("install_date").to_pylist()
    assert dates == [dt.date(2015, 10, 1), dt.date(2015, 10, 2)]


def test_a_warehouse_timestamp_with_a_time_of_day_is_its_date(tmp_path: Path) -> None:
    # The Parquet reader writes a timestamp with a time as 2016-09-28T14:30:00, and with its
    # fraction of a second where it has one (2016-09-30T08:15:00.250): still a date.
    when = [
        dt.datetime(2016, 9, 28, 14, 30),
        dt.datetime(2016, 9, 29),
        dt.datetime(2016, 9, 30, 8, 15, 0, 250_000),
    ]
    table = pa.table(
        {
            "mpxn number": ["1538401916143"] * 3,
            "device id": [
                "00-DB-12-65-F5-3E-94-21",
                "00-DB-12-E5-02-11-67-0E",
                "00-DB-12-E5-02-11-67-0F",
            ],
            "firmware version": ["2.5.0", "2.03", "1.0"],
            "manufacturer": ["Secure"] * 3,
            "type": ["CHF", "ESME", "IHD"],
            "device status": ["Commissioned"] * 3,
            "commisioned date": pa.array(when, pa.timestamp("ms")),
            "site": ["SEC1"] * 3,
        }
    )
    path = tmp_path / "warehouse.parquet"
    pq.write_table(table, path)

    result = ingest([path], "warehouse_estate_firmware")

    assert result.quarantine.num_rows == 0
    dates = result.devices.column("commissioned_date").to_pylist()
    assert dates == [dt.date(2016, 9, 28), dt.date(2016, 9, 29), dt.date(2016, 9, 30)]


def test_installation_mpxn_comes_from_its_meter_before_its_hub(
    write_text: Callable[..., Path],
) -> None:
    # The meter's MPAN wins over the hub's; a hub's MPxN counts only by its shape, and only
    # where no meter gives one.
    def hub(site: str, mpxn: str) -> str:
        return HUB.replace("LG1;", f"{site};").replace(";1312345678907;", f";{mpxn};")

    meter = METER.replace("LG1;", "LG2;").replace(";1312345678907;", ";1312345678916;")
    gas = GAS.replace("LG1;", "LG4;")
    lines = [HEADER, hub("LG1", "1312345678907"), hub("LG2", "1312345678907"), meter]
    lines += [hub("LG3", "3938424403"), hub("LG4", "1312345678925"), gas]
    path = write_text("lg.csv", lines)
    installations = ingest([path], LANDIS).installations.to_pylist()
    assert [(i["installation_id"], i["mpan_core"], i["mprn"]) for i in installations] == [
        ("LG1", "1312345678907", None),
        ("LG2", "1312345678916", None),
        ("LG3", None, "3938424403"),
        ("LG4", "1312345678925", "3938424403"),
    ]


def test_the_same_extract_given_twice_is_refused(tmp_path: Path, examples: Path) -> None:
    """Each of its rows would be a duplicate of itself, read twice."""
    extract = tmp_path / "landis.csv"
    extract.write_bytes((examples / "landis_ioc_devices.csv").read_bytes())
    again = tmp_path / "." / "landis.csv"
    with pytest.raises(InputError, match="is given twice"):
        ingest([extract, again], "landis_ioc_devices")


def test_an_extract_that_is_not_a_regular_file_is_refused_saying_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a regular file"):
        ingest([tmp_path], "landis_ioc_devices")
    with pytest.raises(InputError, match="no such file"):
        ingest([tmp_path / "absent.csv"], "landis_ioc_devices")
