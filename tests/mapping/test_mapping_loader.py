"""Mapping files: the shipped ones load; a broken one names its file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

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
            GOOD.format(name="vendor")
            + "    commissioned_date: {column: D, date_format: '%d/%b'}\n",
            "device.fields.commissioned_date.date_format",
            "uses %b",
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
