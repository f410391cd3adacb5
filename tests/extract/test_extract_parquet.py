"""ParquetReader on warehouse exports: floats holding MPANs, timestamps holding dates, other
column types, streaming in batches, and files that cannot be used."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reader_checks import read_all

from migrate.errors import InputError
from migrate.extract import open_extract
from migrate.extract.parquet import ParquetReader

REQUIRED = ["mpxn number", "device id"]


def write(path: Path, columns: dict[str, pa.Array], **options: object) -> Path:
    pq.write_table(pa.table(columns), path, **options)
    return path


def single_column(tmp_path: Path, column: pa.Array) -> list[str | None]:
    n = len(column)
    path = write(
        tmp_path / "one.parquet",
        {"mpxn number": column, "device id": pa.array([f"D{i}" for i in range(n)])},
    )
    rows, _ = read_all(ParquetReader(path, REQUIRED))
    return [row["mpxn number"] for row in rows]


def test_float_mpans_come_back_as_integer_strings(tmp_path: Path) -> None:
    values = pa.array(
        [1312345678907.0, 1012345678901.0, 1234567890.0, 0.0, -3.0, 9007199254740991.0],
        pa.float64(),
    )

    assert single_column(tmp_path, values) == [
        "1312345678907",
        "1012345678901",
        "1234567890",
        "0",
        "-3",
        "9007199254740991",
    ]


def test_float_values_that_are_not_exact_integers_keep_their_float_text(tmp_path: Path) -> None:
    floats = [1.5, 1312345678907.5, 2.0**53, 1e16, 1.31234567891e12 + 0.25, float("inf"), -0.125]

    result = single_column(tmp_path, pa.array(floats, pa.float64()))

    assert result == [
        "1.5",
        "1.3123456789075e+12",
        # Past 2**53 a float no longer holds every integer: never written as if exact.
        "9.007199254740992e+15",
        "1e+16",
        "1.31234567891025e+12",
        "inf",
        "-0.125",
    ]
    # The text is the float's own shortest spelling: it reads back as the same value.
    assert [float(text) for text in result if text is not None] == floats


def test_nan_and_null_floats_are_null(tmp_path: Path) -> None:
    values = pa.array([float("nan"), None, 1312345678907.0, float("nan")], pa.float64())

    assert single_column(tmp_path, values) == [None, None, "1312345678907", None]


def test_float32_never_invents_digits(tmp_path: Path) -> None:
    """A float32 holds every integer only up to 2**24: a 13-digit MPAN in one has lost digits."""
    values = pa.array([1312345678907.0, 1234.0, 16777215.0, 0.5, float("nan")], pa.float32())

    result = single_column(tmp_path, values)

    assert result[0] is not None
    assert result[0] != "1312345678907"
    assert not result[0].isdigit(), result[0]  # e.g. "1.3123457e+12", never "1312345686016"
    assert result[1:] == ["1234", "16777215", "0.5", None]


def test_float32_identifiers_of_up_to_ten_digits_never_read_as_other_integers(
    tmp_path: Path,
) -> None:
    """Arrow spells a float32 below 1e10 without an exponent: 202374010 stored as float32
    read as 202374020, an MPRN with a digit changed. From 2**24 such values are spelt in
    scientific notation, which the MPxN and serial checks refuse as PRECISION_LOST."""
    values = pa.array([202374010.0, 5973681809.0, 16777217.0, -33554434.0], pa.float32())

    result = single_column(tmp_path, values)

    assert result == ["2.0237402e+08", "5.9736817e+09", "1.6777216e+07", "-3.3554432e+07"]
    # Each is the float32's own shortest spelling: read back as a float32, the same value.
    assert np.array([float(text) for text in result], np.float32).tolist() == values.to_pylist()


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_midnight_timestamps_are_iso_dates(tmp_path: Path, unit: str) -> None:
    values = pa.array(
        [dt.datetime(2023, 4, 1), None, dt.datetime(2020, 2, 29), dt.datetime(1999, 12, 31)],
        pa.timestamp(unit),
    )

    assert single_column(tmp_path, values) == ["2023-04-01", None, "2020-02-29", "1999-12-31"]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamps_with_times_are_iso_datetimes(tmp_path: Path, unit: str) -> None:
    values = pa.array(
        [
            dt.datetime(2024, 3, 5, 14, 30, 15),
            dt.datetime(2024, 3, 5),
            None,
            dt.datetime(2024, 12, 31, 23, 59, 59),
        ],
        pa.timestamp(unit),
    )

    assert single_column(tmp_path, values) == [
        "2024-03-05T14:30:15",
        "2024-03-05",  # each value on its own: a midnight beside a time is still a date
        None,
        "2024-12-31T23:59:59",
    ]


def test_timestamps_with_fractions_of_a_second_keep_them(tmp_path: Path) -> None:
    values = pa.array(
        [dt.datetime(2024, 3, 5, 14, 30, 15, 250_000), dt.datetime(2024, 3, 5, 9)],
        pa.timestamp("ms"),
    )

    result = single_column(tmp_path, values)

    assert result[0] is not None and result[0].startswith("2024-03-05T14:30:15.25")
    assert result[1] == "2024-03-05T09:00:00"  # no fraction where it has none


def test_other_column_types_become_their_text(tmp_path: Path) -> None:
    path = write(
        tmp_path / "types.parquet",
        {
            "MPXN Number": pa.array([1312345678907, 1234567890, None], pa.int64()),
            "Device ID": pa.array(["00-1B-C5-00-00-00-00-01", None, "x"]).dictionary_encode(),
            "small": pa.array([7, 0, 255], pa.uint8()),
            "negative": pa.array([-1, 2, -3], pa.int32()),
            "flag": pa.array([True, False, None]),
            "commisioned date": pa.array(
                [dt.date(2023, 4, 1), None, dt.date(2020, 2, 29)], pa.date32()
            ),
            "type": pa.array(["ESME", "GSME", "CHF"], pa.large_string()),
            "count": pa.array([1.0, 2.0, 3.0]).dictionary_encode(),
            "amount": pa.array([Decimal("12.50"), Decimal("0.01"), None], pa.decimal128(10, 2)),
        },
    )

    reader = ParquetReader(path, REQUIRED)
    rows, numbers = read_all(reader)

    assert reader.columns == [
        "mpxn number",
        "device id",
        "small",
        "negative",
        "flag",
        "commisioned date",
        "type",
        "count",
        "amount",
    ]
    assert rows == [
        {
            "mpxn number": "1312345678907",
            "device id": "00-1B-C5-00-00-00-00-01",
            "small": "7",
            "negative": "-1",
            "flag": "true",
            "commisioned date": "2023-04-01",
            "type": "ESME",
            "count": "1",
            "amount": "12.50",
        },
        {
            "mpxn number": "1234567890",
            "device id": None,
            "small": "0",
            "negative": "2",
            "flag": "false",
            "commisioned date": None,
            "type": "GSME",
            "count": "2",
            "amount": "0.01",
        },
        {
            "mpxn number": None,
            "device id": "x",
            "small": "255",
            "negative": "-3",
            "flag": None,
            "commisioned date": "2020-02-29",
            "type": "CHF",
            "count": "3",
            "amount": None,
        },
    ]
    assert numbers == [1, 2, 3]


def test_streaming_in_small_batches_keeps_ordinals_and_record_numbers(tmp_path: Path) -> None:
    n = 1_000
    mpans = 1_000_000_000_000.0 + np.arange(n, dtype=np.float64)
    mpans[::97] = np.nan
    path = write(
        tmp_path / "stream.parquet",
        {
            "mpxn number": pa.array(mpans, pa.float64()),
            "device id": pa.array([f"D{i}" for i in range(n)]),
            "seen": pa.array(
                [dt.datetime(2024, 1, 1) + dt.timedelta(days=i % 30) for i in range(n)],
                pa.timestamp("us"),
            ),
        },
        row_group_size=128,
    )

    reader = ParquetReader(path, REQUIRED, batch_rows=50)
    batches = list(reader.batches())

    assert len(batches) >= 20
    ordinals = np.concatenate([o for _, o in batches])
    assert ordinals.tolist() == list(range(n))
    ids = [v for batch, _ in batches for v in batch.column("device id").to_pylist()]
    values = [v for batch, _ in batches for v in batch.column("mpxn number").to_pylist()]
    seen = [v for batch, _ in batches for v in batch.column("seen").to_pylist()]
    numbers = reader.source_rows(ordinals).tolist()
    assert numbers == list(range(1, n + 1))
    assert ids == [f"D{i}" for i in range(n)]
    assert values == [None if i % 97 == 0 else str(1_000_000_000_000 + i) for i in range(n)]
    assert seen[:3] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert seen[-1] == (dt.date(2024, 1, 1) + dt.timedelta(days=(n - 1) % 30)).isoformat()
    assert reader.account.unreadable == [] and reader.account.blank_rows == 0


def test_empty_table_gives_no_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path / "empty.parquet",
        {"mpxn number": pa.array([], pa.float64()), "device id": pa.array([], pa.string())},
    )

    reader = ParquetReader(path, REQUIRED)
    rows, numbers = read_all(reader)

    assert reader.columns == ["mpxn number", "device id"]
    assert rows == [] and numbers == []


@pytest.mark.parametrize(
    "content",
    [b"", b"mpxn number,device id\n1,D1\n", b"PAR1" + bytes(range(256)) + b"PAR1"],
    ids=["empty", "csv", "garbage-with-magic"],
)
def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "warehouse.parquet"
    path.write_bytes(content)

    with pytest.raises(InputError) as caught:
        ParquetReader(path, REQUIRED)

    assert caught.value.path == str(path)
    assert "Parquet" in caught.value.problem


def test_a_truncated_parquet_file_is_refused(tmp_path: Path) -> None:
    good = write(
        tmp_path / "good.parquet",
        {"mpxn number": pa.array([1.0] * 100), "device id": pa.array(["D"] * 100)},
    )
    path = tmp_path / "truncated.parquet"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])

    with pytest.raises(InputError) as caught:
        ParquetReader(path, REQUIRED)

    assert caught.value.path == str(path)


def test_missing_required_column_is_refused_naming_it(tmp_path: Path) -> None:
    path = write(
        tmp_path / "missing.parquet",
        {"mpxn number": pa.array([1.0]), "firmware version": pa.array(["1.0"])},
    )

    with pytest.raises(InputError) as caught:
        ParquetReader(path, REQUIRED)

    assert caught.value.path == str(path)
    assert caught.value.problem.startswith("required columns missing: device id (")


def test_required_column_twice_in_the_schema_is_refused(tmp_path: Path) -> None:
    table = pa.Table.from_arrays(
        [pa.array([1.0]), pa.array(["a"]), pa.array(["b"])],
        names=["mpxn number", "device id", "Device ID"],
    )
    path = tmp_path / "twice.parquet"
    pq.write_table(table, path)

    with pytest.raises(InputError, match="appears twice") as caught:
        ParquetReader(path, REQUIRED)

    assert caught.value.path == str(path)


def test_an_unused_nested_column_is_kept_as_json_text(tmp_path: Path) -> None:
    # A warehouse's extra list or struct column is no reason to refuse the file; it stays
    # part of each row, so rows differing only there are not duplicates.
    path = write(
        tmp_path / "nested.parquet",
        {
            "mpxn number": pa.array([1.0, 1.0, 1.0]),
            "device id": pa.array(["D1", "D1", "D1"]),
            "history": pa.array([[1, 2], [1, 3], None]),
            "site": pa.array([{"code": "S1"}, {"code": "S1"}, {"code": None}]),
        },
    )
    rows, _ = read_all(ParquetReader(path, REQUIRED))

    assert [row["history"] for row in rows] == ["[1, 2]", "[1, 3]", None]
    assert [row["site"] for row in rows] == ['{"code": "S1"}', '{"code": "S1"}', '{"code": null}']


def test_a_column_left_empty_is_read_as_empty(tmp_path: Path) -> None:
    # An all-empty column is typed null in Parquet; it is a column like any other.
    path = write(
        tmp_path / "empty.parquet",
        {"mpxn number": pa.array([1.0]), "device id": pa.array(["D1"]), "notes": pa.nulls(1)},
    )
    rows, _ = read_all(ParquetReader(path, [*REQUIRED, "notes"]))

    assert rows == [{"mpxn number": "1", "device id": "D1", "notes": None}]


def refusal_of_used_column(path: Path, column: str) -> InputError:
    """The error of reading `path` with `column` among the columns the mapping uses: it must
    name the file and the column."""
    reader = ParquetReader(path, [*REQUIRED, column])
    with pytest.raises(InputError) as caught:
        list(reader.batches())
    assert caught.value.path == str(path)
    assert caught.value.column == column
    return caught.value


def test_a_used_column_whose_type_has_no_text_is_refused_naming_it(tmp_path: Path) -> None:
    path = write(
        tmp_path / "nested.parquet",
        {
            "mpxn number": pa.array([1.0]),
            "device id": pa.array(["D1"]),
            "history": pa.array([[1, 2]]),
        },
    )
    assert "unsupported column type" in refusal_of_used_column(path, "history").problem


def binary_file(tmp_path: Path) -> Path:
    """A warehouse's raw 16-byte key (a hash, a UUID) beside the fields: not UTF-8 text."""
    return write(
        tmp_path / "binary.parquet",
        {
            "mpxn number": pa.array([1.0]),
            "device id": pa.array(["D1"]),
            "row key": pa.array([b"\xff" * 16], pa.binary(16)),
        },
    )


def test_an_unused_binary_column_that_is_not_text_is_kept_as_hex(tmp_path: Path) -> None:
    rows, _ = read_all(ParquetReader(binary_file(tmp_path), REQUIRED))

    assert rows == [{"mpxn number": "1", "device id": "D1", "row key": f'"{"ff" * 16}"'}]


def test_a_used_binary_column_that_is_not_text_is_refused_naming_it(tmp_path: Path) -> None:
    refusal = refusal_of_used_column(binary_file(tmp_path), "row key")
    assert "bytes that are not text" in refusal.problem


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_open_extract_reads_parquet(tmp_path: Path, suffix: str) -> None:
    path = write(
        tmp_path / f"warehouse{suffix}",
        {"MPXN NUMBER": pa.array([1312345678907.0]), "Device Id": pa.array(["D1"])},
    )

    reader = open_extract(path, REQUIRED)

    assert isinstance(reader, ParquetReader)
    assert read_all(reader) == ([{"mpxn number": "1312345678907", "device id": "D1"}], [1])
