"""NdjsonReader on inventory exports: string values at Arrow's speed, JSON numbers and
booleans written as typed, keys in any case, blank lines, a byte order mark, blocks that end
mid-file, and lines that make the file unusable (named by line and key)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reader_checks import read_all

from migrate.errors import InputError
from migrate.extract import open_extract
from migrate.extract.ndjson import NdjsonReader

REQUIRED = ["installation_id", "device_id", "status"]


def write(path: Path, lines: list[str], *, bom: bool = False) -> Path:
    text = "".join(line + "\n" for line in lines)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def record(n: int, **extra: object) -> str:
    values = {"installation_id": f"I{n}", "device_id": f"D{n}", "status": "Commissioned"}
    return json.dumps({**values, **extra})


def test_strings_nulls_and_missing_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path / "inv.ndjson",
        [record(1), '{"installation_id": "I2", "device_id": null}', record(3, firmware="1.0")],
    )
    reader = NdjsonReader(path, REQUIRED)
    rows, lines = read_all(reader)
    assert reader.columns == ["installation_id", "device_id", "status", "firmware"]
    assert rows[1] == {"installation_id": "I2", "device_id": None, "status": None, "firmware": None}
    assert rows[2]["firmware"] == "1.0"
    assert lines == [1, 2, 3]


def test_numbers_and_booleans_are_written_as_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path / "inv.ndjson",
        [
            record(1, mpxn=1312345678907, firmware=2.5, active=True),
            record(2, mpxn=1.0e3, firmware="3.1", active=False),
        ],
    )
    rows, _ = read_all(NdjsonReader(path, REQUIRED))
    assert [(r["mpxn"], r["firmware"], r["active"]) for r in rows] == [
        ("1312345678907", "2.5", "true"),
        ("1000", "3.1", "false"),
    ]


def test_keys_match_the_mapping_in_any_case(tmp_path: Path) -> None:
    line = json.dumps({"Installation_ID": "I1", "DEVICE_ID": "D1", " status ": "Commissioned"})
    rows, _ = read_all(NdjsonReader(write(tmp_path / "inv.ndjson", [line]), REQUIRED))
    assert rows == [{"installation_id": "I1", "device_id": "D1", "status": "Commissioned"}]


def test_blank_lines_and_a_bom_keep_the_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "inv.ndjson", [record(1), "", "   ", record(2), "\t", record(3)], bom=True
    )
    reader = NdjsonReader(path, REQUIRED)
    rows, lines = read_all(reader)
    assert [row["device_id"] for row in rows] == ["D1", "D2", "D3"]
    assert lines == [1, 4, 6]
    assert reader.account.blank_rows == 3
    assert reader.described()["bom"] is True


def test_small_blocks_give_the_same_rows_and_lines(tmp_path: Path) -> None:
    lines = [record(n, firmware=n if n % 7 == 0 else str(n)) for n in range(200)]
    lines.insert(50, "")
    path = write(tmp_path / "inv.ndjson", lines)
    whole = read_all(NdjsonReader(path, REQUIRED))
    blocks = read_all(NdjsonReader(path, REQUIRED, block_bytes=300))
    assert blocks == whole
    assert whole[1][49:52] == [50, 52, 53]


def test_crlf_and_a_last_line_without_a_break(tmp_path: Path) -> None:
    path = tmp_path / "inv.ndjson"
    path.write_bytes((record(1) + "\r\n" + record(2)).encode())
    rows, lines = read_all(NdjsonReader(path, REQUIRED))
    assert [row["device_id"] for row in rows] == ["D1", "D2"]
    assert lines == [1, 2]


def test_a_line_that_is_not_json_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.ndjson", [record(1), record(2), '{"installation_id": "I3",'])
    with pytest.raises(InputError) as caught:
        read_all(NdjsonReader(path, REQUIRED))
    assert caught.value.row == 3
    assert "not JSON" in caught.value.problem


def test_a_line_that_is_not_an_object_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.ndjson", [record(1), "", '["I2", "D2"]'])
    with pytest.raises(InputError, match="a JSON list, not an object") as caught:
        read_all(NdjsonReader(path, REQUIRED))
    assert caught.value.row == 3


def test_a_nested_value_names_its_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.ndjson", [record(1), record(2, status={"code": 1})])
    with pytest.raises(InputError) as caught:
        read_all(NdjsonReader(path, REQUIRED))
    assert (caught.value.row, caught.value.column) == (2, "status")
    assert "holds a JSON dict, not a value" in caught.value.problem


def test_a_missing_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="required columns missing: status"):
        NdjsonReader(
            write(tmp_path / "a.ndjson", ['{"installation_id": "I", "device_id": "D"}']), REQUIRED
        )


def test_a_file_of_no_objects_is_an_empty_table(tmp_path: Path) -> None:
    empty = tmp_path / "b.ndjson"
    empty.write_bytes(b"")
    for path in (empty, write(tmp_path / "c.ndjson", ["", "  "])):
        reader = NdjsonReader(path, REQUIRED)
        assert reader.columns == REQUIRED
        assert read_all(reader) == ([], [])


def test_the_suffix_picks_the_reader_and_binary_files_are_refused(tmp_path: Path) -> None:
    reader = open_extract(write(tmp_path / "inv.jsonl", [record(1)]), REQUIRED)
    assert isinstance(reader, NdjsonReader)
    parquet = tmp_path / "inv.ndjson"
    parquet.write_bytes(b"PAR1" + b"\0" * 20)
    with pytest.raises(InputError, match="is a Parquet file, but the mapping reads ndjson text"):
        open_extract(parquet, REQUIRED)


def test_json_nested_too_deeply_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "deep.ndjson", [record(1), "[" * 100_000 + "]" * 100_000])
    with pytest.raises(InputError, match="nested too deeply") as refused:
        read_all(NdjsonReader(path, REQUIRED))
    assert refused.value.row == 2


def test_half_a_surrogate_pair_is_refused_at_its_line_and_key(tmp_path: Path) -> None:
    """`\\ud800` alone is valid JSON but no character: it has no UTF-8."""
    lines = [record(n) for n in range(1, 4)]
    lines.append(json.dumps({"installation_id": "I4\ud800", "device_id": 5, "status": "x"}))
    path = write(tmp_path / "half.ndjson", lines)
    with pytest.raises(InputError, match="half of a surrogate pair") as refused:
        read_all(NdjsonReader(path, REQUIRED))
    assert (refused.value.row, refused.value.column) == (4, "installation_id")
