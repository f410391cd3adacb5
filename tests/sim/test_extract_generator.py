"""The synthetic IOC extract is what the IOC SMSO writes, and its planted defects are really there.

Tests elsewhere trust `GeneratedExtract.planted` as the expected quarantine counts, so each
kind is found here in the file by its own rule, independently of the generator's code.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from migrate.sim import extract_generator as gen
from migrate.sim.extract_generator import (
    DEFECT_KINDS,
    HEADER,
    GeneratedExtract,
    generate_long_extract,
)

try:
    from migrate.identifiers import check_mpan_core
except ImportError:  # pragma: no cover - identifiers without the Arrow checks
    check_mpan_core = None
from migrate.identifiers import mpan_check_digits, mprn_check_digits

COLUMNS = HEADER.split(";")
EUI = re.compile(r"70-b3-d5(-[0-9a-f]{2}){5}")
TRUNCATED_EUI = re.compile(r"70-b3-d5(-[0-9a-f]{2}){4}-")
DEVICE_TYPES = {
    "Comms Hub",
    "Electricity Meter",
    "Gas Meter",
    "Prepayment Interface",
    "In Home Display",
}


def read_lines(path: Path) -> list[str]:
    """Data lines (header excluded), decoded as Windows-1252, split on CRLF only."""
    raw = path.read_bytes()
    assert raw.endswith(b"\r\n")
    lines = raw.decode("cp1252").split("\r\n")[:-1]
    assert lines[0] == HEADER
    return lines[1:]


def fields(lines: list[str]) -> list[list[str]]:
    return [line.split(";") for line in lines]


def mpan_valid(cores: list[str]) -> dict[str, bool]:
    """Check digit verdicts for 13-digit cores, via the toolkit's check if present (in one
    vectorised call), else the digit function."""
    if check_mpan_core is not None:
        reasons = check_mpan_core(pa.array(cores, pa.string())).reasons.to_pylist()
        return {core: reason is None for core, reason in zip(cores, reasons, strict=True)}
    digits = np.array([[int(c) for c in core] for core in cores]).reshape(-1, 13)
    verdicts = mpan_check_digits(digits[:, :12]) == digits[:, 12]
    return dict(zip(cores, verdicts.tolist(), strict=True))


def mprn_ok(mprn: str) -> bool:
    body = np.array([[int(c) for c in mprn[:-2]]])
    return int(mprn_check_digits(body)[0]) == int(mprn[-2:])


def valid_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%d/%m/%Y")
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def defective(tmp_path_factory: pytest.TempPathFactory) -> GeneratedExtract:
    path = tmp_path_factory.mktemp("gen") / "ioc.csv"
    return generate_long_extract(path, 4000, seed=7, defect_rate=0.05)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> GeneratedExtract:
    path = tmp_path_factory.mktemp("gen") / "ioc_clean.csv"
    return generate_long_extract(path, 4000, seed=3)


def test_header_encoding_and_line_endings(defective: GeneratedExtract) -> None:
    raw = defective.path.read_bytes()
    assert raw.startswith(HEADER.encode("ascii") + b"\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")  # CRLF, nothing else
    # Customers' names in Notes are Windows-1252 bytes (ë is 0xEB), not UTF-8.
    assert "ë".encode("cp1252") in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_row_and_installation_counts(clean: GeneratedExtract) -> None:
    rows = fields(read_lines(clean.path))
    assert len(rows) == clean.rows == 4000
    assert all(len(row) == 12 for row in rows)
    sites = [row[0] for row in rows]
    assert len(set(sites)) == clean.installations
    assert all(re.fullmatch(r"LG\d{7,}", site) for site in sites)
    # Rows are grouped by installation, hub first.
    assert sites == sorted(sites)
    assert 2.2 < clean.rows / clean.installations < 2.8
    assert clean.planted == dict.fromkeys(DEFECT_KINDS, 0)


@pytest.mark.parametrize("devices", [0, 1, 2, 7, 250])
def test_exact_device_counts(tmp_path: Path, devices: int) -> None:
    result = generate_long_extract(tmp_path / "x.csv", devices, seed=1)
    assert result.rows == devices == len(read_lines(result.path))


def test_clean_rows_are_valid(clean: GeneratedExtract) -> None:
    rows = fields(read_lines(clean.path))
    by_type = Counter(row[1] for row in rows)
    assert set(by_type) <= DEVICE_TYPES
    assert by_type["Comms Hub"] == clean.installations
    euis = [row[2] for row in rows]
    assert all(EUI.fullmatch(eui) for eui in euis)
    assert len(set(euis)) == len(euis)
    mpan_ok = mpan_valid([row[7] for row in rows if len(row[7]) == 13])
    for site, kind, _eui, make, model, firmware, serial, mpxn, date, supplier, status, _ in rows:
        assert make == "Landis+Gyr"
        assert valid_date(date) and 2012 <= int(date[-4:]) <= 2019
        assert supplier in {"LOND", "MANW", "EELC", "BGAS", "OVOE", "SWEB"}
        assert status in {"Live", "Dormant"}
        if kind == "Electricity Meter":
            assert model == "E470-S1" and firmware in {"V2.1.4", "V2.1.3"}
            assert re.fullmatch(r"L\d\d[A-Z]{2}\d{6}", serial) and serial[1:3] == date[-2:]
            assert len(mpxn) == 13
        elif kind == "Gas Meter":
            assert model == "G470-S1" and firmware in {"V1.1.0", "V1.0.9"}
            assert re.fullmatch(r"G4L\d{12}", serial) and serial[3:7] == date[-4:]
            assert 8 <= len(mpxn) <= 10 and mprn_ok(mpxn), (site, mpxn)
        elif kind == "Comms Hub":
            assert model == "LG-CH1" and firmware in {"V3.0.2", "V3.1.0"}
        elif kind == "Prepayment Interface":
            assert (model, firmware, mpxn) == ("LG-PPMID", "V1.0.0", "")
        else:
            assert (model, firmware, serial, mpxn) == ("Ecometer S1", "", "", "")
        if len(mpxn) == 13:
            assert 10 <= int(mpxn[:2]) <= 23 and mpan_ok[mpxn], (site, mpxn)
    statuses = Counter(row[10] for row in rows)
    assert 0.9 < statuses["Live"] / len(rows) < 0.99


def test_hub_carries_the_installation_mpan_or_mprn(clean: GeneratedExtract) -> None:
    sites: dict[str, dict[str, str]] = {}
    for row in fields(read_lines(clean.path)):
        sites.setdefault(row[0], {})[row[1]] = row[7]
    for devices in sites.values():
        meter = devices.get("Electricity Meter", devices.get("Gas Meter"))
        assert meter is not None
        assert devices["Comms Hub"] == meter
    mpans = [d["Electricity Meter"] for d in sites.values() if "Electricity Meter" in d]
    mprns = [d["Gas Meter"] for d in sites.values() if "Gas Meter" in d]
    assert len(set(mpans)) == len(mpans) and len(set(mprns)) == len(mprns)


def test_notes_carry_personal_data_only_sometimes(clean: GeneratedExtract) -> None:
    notes = [row[11] for row in fields(read_lines(clean.path))]
    filled = [note for note in notes if note]
    assert 0 < len(filled) < 0.05 * len(notes)
    assert all(any(ord(c) > 127 for c in note) for note in filled)


def test_planted_defects_are_in_the_file(defective: GeneratedExtract) -> None:
    planted = defective.planted
    assert set(planted) == set(DEFECT_KINDS)
    assert all(count > 0 for count in planted.values())
    assert sum(planted.values()) == round(0.05 * 4000)
    lines = read_lines(defective.path)
    assert len(lines) == defective.rows == 4000 + planted["duplicate_row"]

    counts = Counter(lines)
    assert sum(n - 1 for n in counts.values()) == planted["duplicate_row"]
    assert max(counts.values()) <= 2

    rows = fields(lines)
    mpan_ok = mpan_valid([row[7] for row in rows if len(row[7]) == 13])
    found: dict[str, set[int]] = {kind: set() for kind in DEFECT_KINDS}
    for i, row in enumerate(rows):
        if len(row) == 13:
            found["ragged_row"].add(i)
        if TRUNCATED_EUI.fullmatch(row[2]):
            found["truncated_eui"].add(i)
        else:
            assert EUI.fullmatch(row[2])
        if "E+" in row[7]:
            assert re.fullmatch(r"\d(\.\d*[1-9])?E\+12", row[7])
            found["scientific_mpan"].add(i)
        elif len(row[7]) == 13 and not mpan_ok[row[7]]:
            found["bad_mpan_check_digit"].add(i)
        if row[1] == "Smart Plug":
            found["unknown_device_type"].add(i)
        else:
            assert row[1] in DEVICE_TYPES
        if not valid_date(row[8]):
            assert row[8].startswith("31/02/")
            found["impossible_date"].add(i)
        if row[1] == "Electricity Meter" and row[5] == "":
            found["missing_firmware"].add(i)
    for kind in DEFECT_KINDS:
        if kind != "duplicate_row":
            assert len(found[kind]) == planted[kind], kind

    # One defect per row, and no duplicate is a copy of a defective row.
    defective_rows = [i for kind in DEFECT_KINDS for i in found[kind]]
    assert len(defective_rows) == len(set(defective_rows))
    repeated = {line for line, n in counts.items() if n > 1}
    assert not repeated & {lines[i] for i in defective_rows}


def test_scientific_mpan_keeps_twelve_significant_digits(defective: GeneratedExtract) -> None:
    """The spreadsheet's rounding of the same site's core (whose other row may carry a wrong
    check digit, hence the tolerance)."""
    rows = fields(read_lines(defective.path))
    cores = {row[0]: int(row[7]) for row in rows if len(row[7]) == 13}
    scientific = [row for row in rows if "E+" in row[7]]
    assert len(scientific) == defective.planted["scientific_mpan"]
    for row in filter(lambda row: row[0] in cores, scientific):
        assert abs(float(row[7]) - cores[row[0]]) <= 15


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate_long_extract(tmp_path / "a.csv", 1500, seed=11, defect_rate=0.02)
    b = generate_long_extract(tmp_path / "b.csv", 1500, seed=11, defect_rate=0.02)
    c = generate_long_extract(tmp_path / "c.csv", 1500, seed=12, defect_rate=0.02)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert (a.rows, a.installations, a.planted) == (b.rows, b.installations, b.planted)
    assert a.path.read_bytes() != c.path.read_bytes()


def test_chunks_keep_identifiers_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk boundaries (tiny chunks here) must not repeat EUIs, sites or MPxNs."""
    monkeypatch.setattr(gen, "CHUNK_ROWS", 300)
    result = generate_long_extract(tmp_path / "x.csv", 3000, seed=5, defect_rate=0.02)
    lines = read_lines(result.path)
    assert len(lines) == result.rows == 3000 + result.planted["duplicate_row"]
    assert sum(result.planted.values()) == pytest.approx(0.02 * 3000, abs=12)
    unique = list(dict.fromkeys(lines))
    rows = fields(unique)
    assert len(unique) == 3000
    euis = [row[2] for row in rows]
    assert len(set(euis)) == len(euis)
    sites = [row[0] for row in rows]
    assert sites == sorted(sites) and len(set(sites)) == result.installations
    meters = [row[7] for row in rows if row[1] in {"Electricity Meter", "Gas Meter"}]
    assert len(set(meters)) == len(meters)


@pytest.mark.parametrize(
    ("devices", "seed", "rate"), [(-1, 0, 0.0), (10, -1, 0.0), (10, 0, -0.1), (10, 0, 0.9)]
)
def test_rejects_bad_arguments(tmp_path: Path, devices: int, seed: int, rate: float) -> None:
    with pytest.raises(ValueError):
        generate_long_extract(tmp_path / "x.csv", devices, seed=seed, defect_rate=rate)
