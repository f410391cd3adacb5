"""Cohort rule files and the CPL import: checked on load, changes shown before writing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from migrate import api
from migrate.cli import app
from migrate.cohort import available_cohorts, load_cohort
from migrate.cohort.cpl import FieldChange, read_cpl
from migrate.cohort.firmware_order import FirmwareOrder, order_keys
from migrate.errors import ConfigError, InputError

REPO = Path(__file__).resolve().parents[2]
CPL = REPO / "examples" / "eligible_combinations.csv"


@pytest.fixture
def cohorts(tmp_path: Path) -> Path:
    folder = tmp_path / "cohorts"
    shutil.copytree(REPO / "cohorts", folder)
    return folder


def test_the_shipped_cohorts_load_and_match_the_shipped_cpl() -> None:
    assert available_cohorts(REPO / "cohorts") == ["dormant", "foc", "ioc", "moc"]
    for name in ("ioc", "moc", "foc"):
        rules = load_cohort(name, REPO / "cohorts")
        assert rules.modes == ["ACTIVE"] and rules.max_attempts == 5
        assert rules.capacity_per_supplier_per_day == 100
    assert load_cohort("dormant", REPO / "cohorts").modes == ["DORMANT"]
    imported = api.import_cpl(CPL, check=True, cohorts_dir=REPO / "cohorts")
    assert not imported.any and not imported.untaken


def test_import_shows_added_removed_and_changed_then_writes_only_the_block(
    cohorts: Path, tmp_path: Path
) -> None:
    lines = CPL.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    moc = [r for r in rows if ",MOC," in r]
    kept = [r for r in rows if r not in moc[:2]]  # drop two MOC combinations
    changed = {
        # S1-0003 listed a day later; S1-0004's electricity meter on newer firmware, its gas
        # meter gone.
        "S1-0003,MOC,SECURE-SMSO,2019-05-01,": "S1-0003,MOC,SECURE-SMSO,2019-05-02,",
        "Liberty 100,1.14,Secure,Cirrus G4,3.2,,,": "Liberty 100,1.16,,,,,,",
    }
    for old, new in changed.items():
        kept = [r.replace(old, new) if r.startswith(("S1-0003", "S1-0004")) else r for r in kept]
    kept.append(
        "S1-9999,MOC,SECURE-SMSO,2020-01-01,Secure,SCH-1,2.6.0,Secure,Liberty 100,1.14,,,,,,"
    )
    cpl = tmp_path / "cpl.csv"
    cpl.write_text("\n".join([header, *kept]) + "\n")
    before = (cohorts / "moc.yaml").read_text()

    changes = {c.cohort: c for c in api.import_cpl(cpl, check=True, cohorts_dir=cohorts).changes}
    assert changes["moc"].added == ["S1-9999"]
    assert changes["moc"].removed == ["S1-0001", "S1-0002"]
    assert changes["moc"].changed == {
        "S1-0003": [FieldChange("first_listed", "2019-05-01", "2019-05-02")],
        "S1-0004": [
            FieldChange("esme_firmware", "1.14", "1.16"),
            FieldChange("gsme_manufacturer", "Secure", None),
            FieldChange("gsme_model", "Cirrus G4", None),
            FieldChange("gsme_firmware", "3.2", None),
        ],
    }
    assert not changes["ioc"].any
    result = CliRunner().invoke(
        app, ["cohort", "import-cpl", str(cpl), "--check", "--cohorts-dir", str(cohorts)]
    )
    assert "  ~ S1-0003: first_listed 2019-05-01 -> 2019-05-02\n" in result.stdout
    assert (
        "  ~ S1-0004: esme_firmware 1.14 -> 1.16, gsme_manufacturer Secure -> (none), "
        "gsme_model Cirrus G4 -> (none), gsme_firmware 3.2 -> (none)"
    ) in result.stdout.replace("\n", "")
    assert (cohorts / "moc.yaml").read_text() == before  # --check writes nothing

    api.import_cpl(cpl, cohorts_dir=cohorts)
    after = (cohorts / "moc.yaml").read_text()
    assert after.split("\ncombinations:")[0] == before.split("\ncombinations:")[0]
    rules = load_cohort("moc", cohorts)
    assert "S1-9999" in {c.id for c in rules.combinations}
    assert not api.import_cpl(cpl, check=True, cohorts_dir=cohorts).any


def test_import_cli_check_exits_1_when_files_are_out_of_date(cohorts: Path, tmp_path: Path) -> None:
    cpl = tmp_path / "cpl.csv"
    cpl.write_text("\n".join(CPL.read_text().splitlines()[:-1]) + "\n")
    result = CliRunner().invoke(
        app, ["cohort", "import-cpl", str(cpl), "--check", "--cohorts-dir", str(cohorts)]
    )
    assert result.exit_code == 1
    assert "  - S1-" in result.stdout


def test_rows_for_a_cohort_no_rule_file_takes_are_shown_by_check_and_refused_by_import(
    cohorts: Path, tmp_path: Path
) -> None:
    lines = CPL.read_text().splitlines()
    lines[5] = lines[5].replace(",MOC,", ",M0C,")  # a typing slip: zero for O
    lines[9] = lines[9].replace(",MOC,", ",M0C,")
    lines.append("S1-9996,SOC,LG-SMSO,2019-06-01,Landis+Gyr,HUB,1.0,,,,,,,,,")
    cpl = tmp_path / "cpl.csv"
    cpl.write_text("\n".join(lines) + "\n")
    before = (cohorts / "moc.yaml").read_text()

    imported = api.import_cpl(cpl, check=True, cohorts_dir=cohorts)
    assert [(row.cohort, row.line) for row in imported.untaken] == [
        ("M0C", 6),
        ("M0C", 10),
        ("SOC", len(lines)),
    ]
    assert imported.any
    result = CliRunner().invoke(
        app, ["cohort", "import-cpl", str(cpl), "--check", "--cohorts-dir", str(cohorts)]
    )
    assert result.exit_code == 1
    expected = f"no rule file takes the cohort: M0C (lines 6, 10); SOC (line {len(lines)})"
    assert expected in result.stdout.replace("\n", "")

    with pytest.raises(InputError) as caught:
        api.import_cpl(cpl, cohorts_dir=cohorts)
    assert caught.value.path == str(cpl)
    assert (caught.value.row, caught.value.column) == (6, "cohort")
    assert "M0C (lines 6, 10); SOC" in caught.value.problem
    assert "nothing written" in caught.value.problem
    assert (cohorts / "moc.yaml").read_text() == before


def test_a_cpl_that_adds_a_manufacturer_without_firmware_order_is_refused(
    cohorts: Path, tmp_path: Path
) -> None:
    cpl = tmp_path / "cpl.csv"
    cpl.write_text(CPL.read_text() + "S1-9998,IOC,LG-SMSO,2019-06-01,Acme,HUB,1.0,,,,,,,,,\n")
    with pytest.raises(ConfigError, match="no firmware_order for manufacturer 'Acme'"):
        api.import_cpl(cpl, cohorts_dir=cohorts)


def test_a_cpl_listing_firmware_its_order_cannot_place_is_refused(
    cohorts: Path, tmp_path: Path
) -> None:
    cpl = tmp_path / "cpl.csv"
    cpl.write_text(
        CPL.read_text()
        + "S1-9997,MOC,SECURE-SMSO,2020-01-01,Secure,SCH-1,2.6.0x,Secure,Liberty 100,1.14,,,,,,\n"
    )
    before = (cohorts / "moc.yaml").read_text()
    with pytest.raises(ConfigError, match=r"cannot place.*S1-9997 CHF: '2.6.0x' \(dotted\)"):
        api.import_cpl(cpl, cohorts_dir=cohorts)
    assert (cohorts / "moc.yaml").read_text() == before


def test_import_never_rewrites_the_toolkits_own_rule_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./cohorts here
    monkeypatch.delenv("MIGRATE_COHORTS_DIR", raising=False)
    with pytest.raises(ConfigError, match="no cohorts folder to write to: give --cohorts-dir"):
        api.import_cpl(CPL, check=True)


def test_a_bad_cpl_row_is_named_by_line_and_column(tmp_path: Path) -> None:
    cpl = tmp_path / "cpl.csv"
    lines = CPL.read_text().splitlines()
    lines[3] = lines[3].replace("2019-05-01", "01/05/2019")
    cpl.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as caught:
        read_cpl(cpl)
    assert (caught.value.row, caught.value.column) == (4, "first_listed")
    lines = CPL.read_text().splitlines()
    lines[2] = lines[2].replace(",Secure,Liberty 100,", ",Secure,,")
    cpl.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as caught:
        read_cpl(cpl)
    assert (caught.value.row, caught.value.column) == (3, "esme_model")


def test_a_repeated_combination_id_is_named_by_its_cpl_row(cohorts: Path, tmp_path: Path) -> None:
    lines = CPL.read_text().splitlines()
    repeat = lines[3].replace(",1.14,", ",1.16,")  # S1-0003 again, listed at line 4
    cpl = tmp_path / "cpl.csv"
    cpl.write_text("\n".join([*lines, repeat]) + "\n")
    before = (cohorts / "moc.yaml").read_text()
    for check in (True, False):
        with pytest.raises(InputError) as caught:
            api.import_cpl(cpl, check=check, cohorts_dir=cohorts)
        assert caught.value.path == str(cpl)
        assert (caught.value.row, caught.value.column) == (len(lines) + 1, "combination_id")
        assert "combination S1-0003 is listed again (first at line 4)" in caught.value.problem
    assert (cohorts / "moc.yaml").read_text() == before


@pytest.mark.parametrize(
    ("edit", "key", "problem"),
    [
        (
            ("capacity_per_supplier_per_day: 100", "capacity_per_supplier_per_day: 0"),
            "capacity_per_supplier_per_day",
            "greater than or equal to 1",
        ),
        (("modes: [ACTIVE]", "modes: [SLEEPY]"), "modes.0", "'ACTIVE' or 'DORMANT'"),
        (
            (
                "window: {start: 2019-09-30, end: 2022-12-31}",
                "window: {start: 2019-09-30, end: 2018-12-31}",
            ),
            "window",
            "ends before it starts",
        ),
        (
            ("firmware: '1.12'", "firmware: 1.12"),
            "combinations.0.devices.ESME.firmware",
            "valid string",
        ),
        (
            ("smso: [SECURE-SMSO]", "smso: [OTHER-SMSO]"),
            "(top level)",
            "which this cohort does not migrate",
        ),
        (
            ("firmware: '1.12'", "firmware: '1.12a'"),
            "(top level)",
            "firmware_order cannot place",
        ),
        (
            ("max_attempts: 5", "max_attempts: 5\nmax_attempts: 7"),
            None,
            "the key 'max_attempts' is given twice",
        ),
    ],
)
def test_a_broken_rule_file_names_file_key_and_problem(
    cohorts: Path, edit: tuple[str, str], key: str | None, problem: str
) -> None:
    path = cohorts / "moc.yaml"
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError) as caught:
        load_cohort("moc", cohorts)
    assert caught.value.path == str(path)
    assert caught.value.key == key
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("scheme", "versions"),
    [
        (FirmwareOrder.DOTTED, ["0.9", "1.2", "1.10", "1.10.1", "2.0"]),
        (FirmwareOrder.HEX, ["00000009", "0000000A", "00000104", "00000405", "000FFFFF"]),
        (FirmwareOrder.BUILD, ["1.1.0-b17", "1.2.3-b9", "1.2.3-b45", "1.2.4-b02", "2.0.0-b1"]),
    ],
)
def test_firmware_orders_sort_as_versions_do(scheme: FirmwareOrder, versions: list[str]) -> None:
    keys = order_keys(pa.array(versions), scheme).to_pylist()
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_unreadable_firmware_has_no_place() -> None:
    keys = order_keys(pa.array(["1.2.3-b45", "V1", None, "1.2.3.4.5"]), FirmwareOrder.DOTTED)
    assert keys.to_pylist() == [None, None, None, None]
