"""ExcelReader on workbooks made with openpyxl: title rows, numeric identifiers, date cells,
sheets, files that are not spreadsheets, and the row numbers Excel shows."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from reader_checks import read_all

from migrate.errors import InputError
from migrate.extract import open_extract
from migrate.extract.excel import ExcelReader

REQUIRED = ["Premises Ref", "Electricity MPAN"]


def workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """Write rows to named sheets, in order; an empty list is an empty row."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_header_below_title_rows_and_a_blank_row(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "edmi.xlsx",
        {
            "Estate": [
                ["EDMI FOC estate extract"],  # row 1
                ["Generated", dt.date(2024, 5, 1)],  # row 2
                [],  # row 3
                [" premises ref ", "ELECTRICITY MPAN", "Gas MPRN", None, "Gas MPRN"],  # row 4
                ["P1", 1312345678907, 1234567890, "x", "y"],  # row 5
                ["P2", 1012345678901, None, None, None],  # row 6
            ]
        },
    )

    reader = ExcelReader(path, REQUIRED)
    rows, numbers = read_all(reader)

    assert reader.columns == [
        "Premises Ref",
        "Electricity MPAN",
        "Gas MPRN",
        "column_4",
        "Gas MPRN.2",
    ]
    assert rows == [
        {
            "Premises Ref": "P1",
            "Electricity MPAN": "1312345678907",
            "Gas MPRN": "1234567890",
            "column_4": "x",
            "Gas MPRN.2": "y",
        },
        {
            "Premises Ref": "P2",
            "Electricity MPAN": "1012345678901",
            "Gas MPRN": "",
            "column_4": "",
            "Gas MPRN.2": "",
        },
    ]
    assert numbers == [5, 6]
    assert reader.account.blank_rows == 0


def test_numeric_identifiers_come_back_as_exact_integer_strings(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "numbers.xlsx",
        {
            "Estate": [
                ["Premises Ref", "Electricity MPAN", "Gas MPRN", "Reading"],
                ["P1", 1312345678907, 1234567890, 0.5],
                ["P2", 1312345678907.0, 9876543210.0, -3.0],
                ["P3", 9999999999999, 1000000000, 1234.25],
                ["P4", 2**53 - 1, 12345678, 1e20],
                ["P5", 0, 7, -0.125],
            ]
        },
    )

    rows, _ = read_all(ExcelReader(path, REQUIRED))

    assert [row["Electricity MPAN"] for row in rows] == [
        "1312345678907",
        "1312345678907",
        "9999999999999",
        "9007199254740991",
        "0",
    ]
    assert [row["Gas MPRN"] for row in rows] == [
        "1234567890",
        "9876543210",
        "1000000000",
        "12345678",
        "7",
    ]
    # Non-integral numbers keep their digits; a float past 2**53 is not passed off as exact.
    assert [row["Reading"] for row in rows] == ["0.5", "-3", "1234.25", "1e+20", "-0.125"]


def test_text_cells_stay_as_typed(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "text.xlsx",
        {
            "Sheet1": [
                ["Premises Ref", "Electricity MPAN", "Serial", "Notes"],
                ["P1", "1.31234567891E+12", "0012345678", "  padded  "],
                ["P2", "1312345678907", "00000000", "Zoë owes £5"],
                ["P3", "13 1234 5678 907", "0", ""],
            ]
        },
    )

    rows, _ = read_all(ExcelReader(path, REQUIRED))

    assert rows == [
        {
            "Premises Ref": "P1",
            "Electricity MPAN": "1.31234567891E+12",
            "Serial": "0012345678",
            "Notes": "  padded  ",
        },
        {
            "Premises Ref": "P2",
            "Electricity MPAN": "1312345678907",
            "Serial": "00000000",
            "Notes": "Zoë owes £5",
        },
        {
            "Premises Ref": "P3",
            "Electricity MPAN": "13 1234 5678 907",
            "Serial": "0",
            "Notes": "",
        },
    ]


def test_text_cell_that_looks_like_a_formula_stays_as_typed(tmp_path: Path) -> None:
    path = tmp_path / "formula.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Premises Ref", "Electricity MPAN"])
    sheet.append(["P1", "=1+1"])
    sheet["B2"].data_type = "s"  # a string cell whose text starts with "="
    book.save(path)

    rows, _ = read_all(ExcelReader(path, REQUIRED))

    assert rows == [{"Premises Ref": "P1", "Electricity MPAN": "=1+1"}]


def test_date_and_datetime_cells_come_back_as_iso_text(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "dates.xlsx",
        {
            "Estate": [
                ["Premises Ref", "Electricity MPAN", "Commissioned On", "Last Contact"],
                ["P1", 1, dt.date(2023, 4, 1), dt.datetime(2024, 3, 5, 14, 30, 15)],
                ["P2", 2, dt.datetime(2020, 2, 29), dt.datetime(2024, 12, 31, 23, 59, 59)],
                ["P3", 3, dt.date(1999, 12, 31), dt.datetime(2024, 1, 1, 0, 0, 1)],
                ["P4", 4, "01/02/2024", dt.time(6, 45)],
            ]
        },
    )

    rows, _ = read_all(ExcelReader(path, REQUIRED))

    assert [row["Commissioned On"] for row in rows] == [
        "2023-04-01",
        "2020-02-29",
        "1999-12-31",
        "01/02/2024",
    ]
    assert [row["Last Contact"] for row in rows] == [
        "2024-03-05T14:30:15",
        "2024-12-31T23:59:59",
        "2024-01-01T00:00:01",
        "06:45:00",
    ]


def test_many_datetimes_round_trip_to_the_second(tmp_path: Path) -> None:
    start = dt.datetime(2021, 1, 1)
    stamps = [start + dt.timedelta(seconds=37_813 * i + i * i) for i in range(500)]
    stamps += [dt.datetime(2022, 6, 1 + i) for i in range(20)]  # midnights: dates
    header: list[object] = ["Premises Ref", "Electricity MPAN", "When"]
    body: list[list[object]] = [[f"P{i}", i, stamp] for i, stamp in enumerate(stamps)]
    path = workbook(tmp_path / "stamps.xlsx", {"S": [header, *body]})

    rows, _ = read_all(ExcelReader(path, REQUIRED))

    expected = [
        stamp.date().isoformat() if stamp.time() == dt.time(0) else stamp.isoformat()
        for stamp in stamps
    ]
    assert [row["When"] for row in rows] == expected


def test_a_datetime_with_a_fraction_of_a_second_is_read_to_the_second(tmp_path: Path) -> None:
    # With its ".123000" the mappings' date formats (%Y-%m-%dT%H:%M:%S) refused it.
    header: list[object] = ["Premises Ref", "Electricity MPAN", "When"]
    cells: list[object] = ["P1", 1, dt.datetime(2016, 5, 22, 13, 37, 42, 123000)]
    path = workbook(tmp_path / "fraction.xlsx", {"S": [header, cells]})

    rows, _ = read_all(ExcelReader(path, REQUIRED))

    assert [row["When"] for row in rows] == ["2016-05-22T13:37:42"]


def test_booleans_and_empty_cells(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "bools.xlsx",
        {
            "S": [
                ["Premises Ref", "Electricity MPAN", "Prepay", "Notes"],
                ["P1", 1, True, None],
                ["P2", 2, False, ""],
            ]
        },
    )

    rows, _ = read_all(ExcelReader(path, REQUIRED))

    assert [(row["Prepay"], row["Notes"]) for row in rows] == [("TRUE", ""), ("FALSE", "")]


def test_blank_rows_are_counted_and_row_numbers_are_excels(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "blanks.xlsx",
        {
            "Estate": [
                ["Premises Ref", "Electricity MPAN"],  # 1
                [],  # 2
                ["P1", 1],  # 3
                [None, None],  # 4
                ["  ", ""],  # 5: only spaces
                ["P2", 2],  # 6
                [],  # 7
                [None, 3],  # 8: not blank
                ["TRL", 2],  # 9
            ]
        },
    )

    reader = ExcelReader(path, REQUIRED, trailer=r"^(TRL|TRAILER|EOF)\b")
    rows, numbers = read_all(reader)

    assert rows == [
        {"Premises Ref": "P1", "Electricity MPAN": "1"},
        {"Premises Ref": "P2", "Electricity MPAN": "2"},
        {"Premises Ref": "", "Electricity MPAN": "3"},
    ]
    assert numbers == [3, 6, 8]
    assert reader.account.blank_rows == 4
    assert reader.account.trailer_rows == 1
    assert reader.account.unreadable == []


@pytest.mark.parametrize("batch_rows", [1000, 2], ids=["one-batch", "many-batches"])
def test_a_row_matching_the_trailer_pattern_is_data_unless_it_ends_the_sheet(
    tmp_path: Path, batch_rows: int
) -> None:
    path = workbook(
        tmp_path / "eof.xlsx",
        {
            "Estate": [
                ["Premises Ref", "Electricity MPAN"],  # 1
                ["P1", 1],  # 2
                ["EOF-7", 2],  # 3: a site, not the end
                [],  # 4
                ["P3", 3],  # 5
                ["EOF", None],  # 6: the trailer
            ]
        },
    )

    reader = ExcelReader(path, REQUIRED, trailer=r"^EOF", batch_rows=batch_rows)
    rows, numbers = read_all(reader)

    assert [row["Premises Ref"] for row in rows] == ["P1", "EOF-7", "P3"]
    assert numbers == [2, 3, 5]
    assert reader.account.trailer_rows == 1
    assert reader.account.blank_rows == 1


def test_the_trailer_pattern_has_the_meaning_it_has_in_a_text_file(tmp_path: Path) -> None:
    # RE2's classes are ASCII's, so "EOFé" matches ^EOF\b in a CSV file: in a sheet too.
    rows = [["Premises Ref", "Electricity MPAN"], ["P1", 1], ["EOFé", None], ["EOF", None]]
    path = workbook(tmp_path / "eof.xlsx", {"Estate": rows})

    reader = ExcelReader(path, REQUIRED, trailer=r"^EOF\b")
    read, numbers = read_all(reader)

    assert ([row["Premises Ref"] for row in read], numbers) == (["P1"], [2])
    assert reader.account.trailer_rows == 2


def test_row_numbers_when_the_sheet_starts_below_row_one(tmp_path: Path) -> None:
    """Nothing at all in rows 1-3 or column A: the used range starts at B4."""
    path = tmp_path / "offset.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Estate"
    sheet["B4"], sheet["C4"] = "Premises Ref", "Electricity MPAN"
    sheet["B5"], sheet["C5"] = "P1", 1312345678907
    sheet["B7"], sheet["C7"] = "P2", 1012345678901
    book.save(path)

    reader = ExcelReader(path, REQUIRED)
    rows, numbers = read_all(reader)

    assert rows == [
        {"Premises Ref": "P1", "Electricity MPAN": "1312345678907"},
        {"Premises Ref": "P2", "Electricity MPAN": "1012345678901"},
    ]
    assert numbers == [5, 7]
    assert reader.account.blank_rows == 1

    explicit = ExcelReader(path, REQUIRED, header_row=4)
    assert read_all(explicit) == (rows, [5, 7])


def test_header_row_given_explicitly(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "explicit.xlsx",
        {
            "S": [
                ["Premises Ref", "Electricity MPAN"],
                ["a decoy", "row"],
                ["Premises Ref", "Electricity MPAN"],
                ["P1", 1],
            ]
        },
    )

    rows, numbers = read_all(ExcelReader(path, REQUIRED, header_row=3))

    assert rows == [{"Premises Ref": "P1", "Electricity MPAN": "1"}]
    assert numbers == [4]


def test_rows_shorter_or_wider_than_the_header(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "ragged.xlsx",
        {
            "S": [
                ["Premises Ref", "Electricity MPAN", "Notes"],
                ["P1"],
                ["P2", 2, "n", "beyond the header", 99],
            ]
        },
    )

    reader = ExcelReader(path, REQUIRED)
    rows, numbers = read_all(reader)

    # The sheet is as wide as its widest row: unnamed columns get a name, nothing is lost.
    assert reader.columns == ["Premises Ref", "Electricity MPAN", "Notes", "column_4", "column_5"]
    assert rows == [
        {
            "Premises Ref": "P1",
            "Electricity MPAN": "",
            "Notes": "",
            "column_4": "",
            "column_5": "",
        },
        {
            "Premises Ref": "P2",
            "Electricity MPAN": "2",
            "Notes": "n",
            "column_4": "beyond the header",
            "column_5": "99",
        },
    ]
    assert numbers == [2, 3]


def test_small_batches_keep_ordinals_and_row_numbers(tmp_path: Path) -> None:
    rows_in: list[list[object]] = [["Title"], [], ["Premises Ref", "Electricity MPAN"]]
    expected: dict[str, int] = {}
    blanks = 0
    for i in range(250):
        if i % 17 == 3:
            rows_in.append([])
            blanks += 1
        else:
            rows_in.append([f"P{i}", 1_000_000_000_000 + i])
            expected[f"P{i}"] = len(rows_in)
    path = workbook(tmp_path / "batches.xlsx", {"Estate": rows_in})

    reader = ExcelReader(path, REQUIRED, batch_rows=7)
    batches = list(reader.batches())
    assert len(batches) > 30
    every = np.concatenate([ordinals for _, ordinals in batches])
    refs = [ref for batch, _ in batches for ref in batch.column("Premises Ref").to_pylist()]
    mpans = [m for batch, _ in batches for m in batch.column("Electricity MPAN").to_pylist()]

    assert dict(zip(refs, reader.source_rows(every).tolist(), strict=True)) == expected
    assert mpans == [str(1_000_000_000_000 + int(ref[1:])) for ref in refs]
    assert reader.account.blank_rows == blanks


def test_sheet_chosen_by_name_and_first_sheet_by_default(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "sheets.xlsx",
        {
            "Cover": [["Premises Ref", "Electricity MPAN"], ["cover", 0]],
            "Estate": [["Premises Ref", "Electricity MPAN"], ["P1", 1312345678907]],
        },
    )

    assert read_all(ExcelReader(path, REQUIRED))[0] == [
        {"Premises Ref": "cover", "Electricity MPAN": "0"}
    ]
    assert read_all(ExcelReader(path, REQUIRED, sheet="Estate"))[0] == [
        {"Premises Ref": "P1", "Electricity MPAN": "1312345678907"}
    ]


def test_missing_sheet_is_refused_listing_the_sheets(tmp_path: Path) -> None:
    path = workbook(tmp_path / "sheets.xlsx", {"Cover": [["x"]], "Estate 2024": [["y"]]})

    with pytest.raises(InputError) as caught:
        ExcelReader(path, REQUIRED, sheet="Estate")

    assert caught.value.path == str(path)
    assert caught.value.problem == "no sheet 'Estate' (sheets: Cover, Estate 2024)"


def test_empty_sheet_is_refused(tmp_path: Path) -> None:
    path = workbook(tmp_path / "empty.xlsx", {"Estate": []})

    with pytest.raises(InputError, match="sheet 'Estate' is empty") as caught:
        ExcelReader(path, REQUIRED)

    assert caught.value.path == str(path)


def test_header_only_sheet_gives_no_batches(tmp_path: Path) -> None:
    path = workbook(tmp_path / "header.xlsx", {"Estate": [["Premises Ref", "Electricity MPAN"]]})

    reader = ExcelReader(path, REQUIRED)

    assert list(reader.batches()) == []
    assert reader.account.blank_rows == 0


def test_required_column_missing_or_repeated_is_refused(tmp_path: Path) -> None:
    missing = workbook(tmp_path / "missing.xlsx", {"S": [["Premises Ref", "Gas MPRN"], ["P", 1]]})
    twice = workbook(
        tmp_path / "twice.xlsx",
        {"S": [["Premises Ref", "Electricity MPAN", "electricity mpan"], ["P", 1, 2]]},
    )

    with pytest.raises(InputError) as caught:
        ExcelReader(missing, REQUIRED)
    assert caught.value.path == str(missing)
    assert caught.value.problem.startswith("required columns missing: Electricity MPAN (")

    with pytest.raises(InputError) as caught:
        ExcelReader(twice, REQUIRED)
    assert caught.value.path == str(twice)
    assert "appears twice" in caught.value.problem


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("renamed.xlsx", b"Premises Ref,Electricity MPAN\nP1,1312345678907\n"),
        ("random.xlsx", bytes(range(256)) * 8),
        ("random.xls", bytes(range(256)) * 8),
        ("random.ods", b"PK\x03\x04" + bytes(range(256)) * 4),
        ("empty.xlsx", b""),
    ],
)
def test_a_file_that_is_not_a_spreadsheet_is_refused(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(InputError) as caught:
        ExcelReader(path, REQUIRED)

    assert caught.value.path == str(path)
    assert "not a readable spreadsheet" in caught.value.problem


def test_a_zip_that_is_not_a_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "archive.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")

    with pytest.raises(InputError, match="not a readable spreadsheet") as caught:
        ExcelReader(path, REQUIRED)

    assert caught.value.path == str(path)


def test_open_extract_reads_a_workbook_sheet(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "estate.XLSX",
        {"Cover": [["nothing"]], "Estate": [["premises ref", "electricity mpan"], ["P1", 7]]},
    )

    reader = open_extract(path, REQUIRED, sheet="Estate", trailer="^TRL")

    assert isinstance(reader, ExcelReader)
    assert read_all(reader) == ([{"Premises Ref": "P1", "Electricity MPAN": "7"}], [2])


@pytest.mark.parametrize("damage", ["sheet cut short", "zip entry corrupt", "sheet missing"])
def test_a_damaged_workbook_is_refused_naming_the_file_and_the_sheet(
    tmp_path: Path, damage: str
) -> None:
    """The workbook opens (its directory is whole) but a sheet's part is damaged: refused
    as bad input (exit 2), never an internal error."""
    good = workbook(
        tmp_path / "good.xlsx",
        {"Estate": [REQUIRED, *[[f"P{n}", f"{n:013d}"] for n in range(2_000)]]},
    )
    bad = tmp_path / "bad.xlsx"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bad, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                if damage == "sheet missing":
                    continue
                if damage == "sheet cut short":
                    data = data[: len(data) // 2]
            target.writestr(item, data)
    if damage == "zip entry corrupt":
        raw = bytearray(bad.read_bytes())
        at = raw.index(b"xl/worksheets/sheet1.xml") + 40
        raw[at : at + 64] = bytes(byte ^ 0xFF for byte in raw[at : at + 64])
        bad.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="cannot be read") as refused:
        read_all(ExcelReader(bad, REQUIRED))
    assert "Estate" in str(refused.value) and str(bad) in str(refused.value)
