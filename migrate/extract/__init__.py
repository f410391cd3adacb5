"""Readers: extract files in, string batches out, whatever the file's format and quirks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from migrate.errors import InputError
from migrate.extract.base import ExtractReader, ReadAccount, UnreadableRow
from migrate.extract.delimited import MAX_VALUE_LINES, DelimitedReader
from migrate.extract.excel import ExcelReader
from migrate.extract.ndjson import NdjsonReader
from migrate.extract.parquet import ParquetReader

__all__ = ["ExtractReader", "ReadAccount", "UnreadableRow", "format_of", "open_extract"]

FORMATS_BY_SUFFIX = {
    ".csv": "delimited",
    ".txt": "delimited",
    ".tsv": "delimited",
    ".dat": "delimited",
    ".psv": "delimited",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "excel",
    ".ods": "excel",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}


def format_of(path: Path, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    try:
        return FORMATS_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise InputError(
            path,
            f"cannot tell the format from the suffix {path.suffix!r}; "
            "set source.format in the mapping",
        ) from None


def open_extract(
    path: Path,
    required: Sequence[str],
    *,
    format: str = "auto",
    encoding: str = "auto",
    delimiter: str = "auto",
    header_row: int | None = None,
    trailer: str | None = None,
    sheet: str | None = None,
    max_value_lines: int = MAX_VALUE_LINES,
) -> ExtractReader:
    """Open an extract for streaming; fails at once, naming the file, if it cannot be used."""
    if not path.exists():
        raise InputError(path, "no such file")
    if not path.is_file():
        raise InputError(path, "is not a regular file (a folder, a device or a pipe)")
    kind = format_of(path, format)
    _check_signature(path, kind)
    if kind == "delimited":
        return DelimitedReader(
            path,
            required,
            encoding=encoding,
            delimiter=delimiter,
            header_row=header_row,
            trailer=trailer,
            max_value_lines=max_value_lines,
        )
    if kind == "excel":
        return ExcelReader(path, required, sheet=sheet, header_row=header_row, trailer=trailer)
    if kind == "ndjson":
        return NdjsonReader(path, required)
    return ParquetReader(path, required)


# The first bytes of binary formats: a mapping for text given one of these is the wrong one.
SIGNATURES = {
    b"PK\x03\x04": "an Excel workbook (or another zip file)",
    b"\xd0\xcf\x11\xe0": "a legacy Excel workbook",
    b"PAR1": "a Parquet file",
}


def _check_signature(path: Path, kind: str) -> None:
    with path.open("rb") as handle:
        head = handle.read(8)
    for signature, what in SIGNATURES.items():
        if head.startswith(signature) and kind in {"delimited", "ndjson"}:
            raise InputError(path, f"is {what}, but the mapping reads {kind} text")
