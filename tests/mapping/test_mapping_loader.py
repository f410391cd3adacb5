"""Mapping files: the shipped ones load; a broken one names its file, key and problem."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from migrate import api
from migrate.errors import ConfigError
from migrate.mapping import available_mappings, load_mapping

SHIPPED = [
    "dcc_inventory",
    "edmi_foc_estate",
    "landis_ioc_devices",
    "secure_moc_installations",
    "warehouse_estate_firmware",
]
GOOD = """
name: {name}
layout: long
installation: {{key: Site}}
device:
  fields:
    device_id: {{column: EUI}}
    device_type: {{column: Type}}
"""

WIDE = """
name: vendor
layout: wide
installation: {key: Site}
devices:
  - type: CHF
    fields: {device_id: {column: Hub}}
  - type: ESME
    fields: {device_id: {column: EUI}}
"""


def test_the_shipped_mappings_load(mappings_dir: Path) -> None:
    assert available_mappings(mappings_dir) == SHIPPED
    for name in SHIPPED:
        mapping = load_mapping(name, mappings_dir)
        assert mapping.name == name
        assert mapping.installation.key in mapping.columns()


def _write(tmp_path: Path, text: str, name: str = "vendor") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_a_minimal_mapping_loads(tmp_path: Path) -> None:
    mapping = load_mapping(str(_write(tmp_path, GOOD.format(name="vendor"))))
    assert mapping.columns() == ["Site", "EUI", "Type"]


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            GOOD.format(name="vendor") + "    colour: {column: C}\n",
            "device.fields",
            "unknown device field 'colour'",
        ),
        (
            GOOD.format(name="vendor") + "    model: {column: M, constant: X}\n",
            "device.fields.model",
            "exactly one of `column` or `constant`",
        ),
        (
            GOOD.format(name="vendor") + "    msn: {column: S, pattern: '[unclosed'}\n",
            "device.fields.msn.pattern",
            "not a valid regular expression",
        ),
        (
            # Python's re reads a lookahead; RE2, which runs the pattern, does not.
            GOOD.format(name="vendor") + "    msn: {column: S, pattern: '^(?=M)\\w+$'}\n",
            "device.fields.msn.pattern",
            "patterns are RE2: no lookarounds",
        ),
        (
            GOOD.format(name="vendor") + "source: {trailer: '^(T)\\1$'}\n",
            "source.trailer",
            "not a valid regular expression",
        ),
        (
            GOOD.format(name="vendor") + "    commissioned_date: {column: D}\n",
            "device.fields",
            "is a date: give its `date_format`",
        ),
        (
            # A constant date states its format too, and is checked with it.
            GOOD.format(name="vendor") + "    commissioned_date: {constant: '2016-11-01'}\n",
            "device.fields",
            "is a date: give its `date_format`",
        ),
        (
            GOOD.format(name="vendor")
            + "    commissioned_date: {constant: '2016-13-01', date_format: '%Y-%m-%d'}\n",
            "device.fields.commissioned_date.constant",
            "the constant '2016-13-01' is INVALID_DATE (date_format '%Y-%m-%d')",
        ),
        (
            GOOD.format(name="vendor")
            + "    commissioned_date: {constant: '01/11/1899', date_format: '%d/%m/%Y'}\n",
            "device.fields.commissioned_date.constant",
            "IMPLAUSIBLE_DATE",
        ),
        (
            WIDE.replace(
                "device_id: {column: EUI}", "device_id: {constant: '00-1B-C5'}, model: {column: M}"
            ),
            "devices.1.fields.device_id.constant",
            "the constant '00-1B-C5' is INVALID_EUI64",
        ),
        (
            GOOD.format(name="vendor") + "    mpxn: {constant: '1312345678907'}\n",
            "device.fields",
            "`mpxn` is read from a column",
        ),
        (
            WIDE.replace(
                "device_id: {column: EUI}", "device_id: {constant: '00-1B-C5-00-00-00-00-01'}"
            ),
            "devices.1.fields",
            "a device group reads at least one column",
        ),
        (
            GOOD.format(name="vendor")
            + "    commissioned_date: {column: D, date_format: '%d/%b'}\n",
            "device.fields.commissioned_date.date_format",
            "uses %b",
        ),
        (
            GOOD.format(name="vendor")
            + "    commissioned_date: {column: D, date_format: '%Y-%m-%d.%f'}\n",
            "device.fields.commissioned_date.date_format",
            "%f, a fraction of a second, needs %S",
        ),
        (
            GOOD.format(name="vendor").replace(
                "device_type: {column: Type}", "device_type: {column: Type, values: {Hub: HUB}}"
            ),
            "device.fields",
            "maps to HUB, which are not among",
        ),
        (
            GOOD.format(name="vendor").replace("layout: long", "layout: sideways"),
            "layout",
            "'long' or 'wide'",
        ),
        (
            GOOD.format(name="vendor") + "personal_columns: [EUI]\n",
            "(top level)",
            "personal columns cannot be mapped: EUI",
        ),
        (GOOD.format(name="Vendor!"), "name", "pattern"),
        (GOOD.format(name="vendor") + "surprise: 1\n", "surprise", "Extra inputs"),
        # An alias inside its own anchor: refused by the schema, not looped over.
        (GOOD.format(name="vendor") + "surprise: &a {x: [*a]}\n", "surprise", "Extra inputs"),
    ],
)
def test_a_broken_mapping_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_mapping(str(path))
    assert caught.value.path == str(path)
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_a_good_constant_date_fills_every_row_and_a_bad_one_stops_no_ingest(
    tmp_path: Path,
) -> None:
    extract = tmp_path / "extract.csv"
    extract.write_text("Site,EUI,Type\nA1,001BC5123456789A,CHF\n")
    constant = "    commissioned_date: {{constant: '{day}', date_format: '%d/%m/%Y'}}\n"
    path = _write(tmp_path, GOOD.format(name="vendor") + constant.format(day="01/11/2016"))
    run = api.ingest([extract], str(path), tmp_path / "good")
    assert run.summary.rows_accepted == 1
    devices = pq.read_table(tmp_path / "good" / "devices.parquet")
    assert devices.column("commissioned_date").to_pylist() == [dt.date(2016, 11, 1)]
    path = _write(tmp_path, GOOD.format(name="vendor") + constant.format(day="31/02/2016"))
    with pytest.raises(ConfigError, match="INVALID_DATE"):
        api.ingest([extract], str(path), tmp_path / "bad")


@pytest.mark.parametrize(
    ("keys", "key", "problem"),
    [
        ("{Yes: ACTIVE, No: DORMANT}", "Yes", "the key Yes (line 6) is read as a boolean"),
        ("{'Yes': ACTIVE, No: DORMANT}", "No", "the key No (line 6) is read as a boolean"),
        ("{on: ACTIVE, OFF: DORMANT}", "on", "quote it, 'on'; likewise OFF (line 6)"),
        ("{TRUE: ACTIVE}", "TRUE", "(YAML reads unquoted yes, no, on, off, true, false so)"),
        ("{1: ACTIVE, 0: DORMANT}", "1", "the key 1 (line 6) is read as a number, not text"),
    ],
)
def test_a_value_map_key_yaml_reads_as_no_text_is_named_and_to_be_quoted(
    tmp_path: Path, keys: str, key: str, problem: str
) -> None:
    mode = f"installation:\n  key: Site\n  fields: {{mode: {{column: Status, values: {keys}}}}}\n"
    path = _write(tmp_path, GOOD.format(name="vendor").replace("installation: {key: Site}\n", mode))
    with pytest.raises(ConfigError) as caught:
        load_mapping(str(path))
    assert caught.value.path == str(path)
    assert caught.value.key == f"installation.fields.mode.values.{key}"
    assert problem in caught.value.problem
    path.write_text(path.read_text().replace(keys, "{'Yes': ACTIVE, 'No': DORMANT}"))
    assert load_mapping(str(path)).installation.fields["mode"].values == {
        "Yes": "ACTIVE",
        "No": "DORMANT",
    }


def test_yaml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: vendor\nlayout: [long\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_mapping(str(path))


def test_a_key_given_twice_is_refused_not_the_last_one_kept(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.format(name="vendor") + "name: vendor\n")
    with pytest.raises(ConfigError, match=r"line \d+.*the key 'name' is given twice"):
        load_mapping(str(path))


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = _write(tmp_path, "!!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_mapping(str(path))


def test_the_name_must_match_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.format(name="other"))
    with pytest.raises(ConfigError) as caught:
        load_mapping(str(path))
    assert caught.value.key == "name"


def test_an_unknown_mapping_lists_the_known_ones(mappings_dir: Path) -> None:
    with pytest.raises(
        ConfigError, match="known: dcc_inventory, edmi_foc_estate, landis_ioc_devices"
    ):
        load_mapping("nope", mappings_dir)


def test_a_local_mappings_folder_adds_to_the_shipped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mappings").mkdir()
    _write(tmp_path / "mappings", GOOD.format(name="vendor"))
    monkeypatch.chdir(tmp_path)
    assert load_mapping("vendor").name == "vendor"
    assert load_mapping("landis_ioc_devices").name == "landis_ioc_devices"
    assert {"vendor", *SHIPPED} <= set(available_mappings())
