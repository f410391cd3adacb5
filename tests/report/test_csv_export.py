"""CSV exports cannot run formulas in the spreadsheet that opens them."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pyarrow as pa

from migrate.report.csv_export import write_csv


def test_formula_cells_are_neutralised_and_the_rest_kept(tmp_path: Path) -> None:
    hostile = ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain", None]
    path = tmp_path / "out.csv"
    write_csv(pa.table({"value": hostile, "row": list(range(len(hostile)))}), path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["value"] for r in rows] == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2+3",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "plain",
        "",
    ]
    assert [r["row"] for r in rows] == [str(i) for i in range(len(hostile))]


def test_a_csv_is_created_with_the_umasks_mode_and_leaves_no_scratch_file(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_csv(pa.table({"a": ["x"]}), tmp_path / "out.csv")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out.csv").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
