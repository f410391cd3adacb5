"""Logs: structured, and free of personal data whatever the input holds."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from migrate.cli import app
from migrate.logs import configure, get_logger

HEADER = (
    "Site ID;Device Type;Device EUI;Make;Model;Firmware;Serial No;MPxN;"
    "Install Date;Supplier;Status;Notes"
)
NAME = "Tenant Zoë Brontë"


def test_no_postcode_name_or_note_reaches_the_logs(
    tmp_path: Path, examples: Path, write_text: Callable[..., Path]
) -> None:
    noted = write_text(
        "lg.csv",
        [
            HEADER,
            "LG1;Comms Hub;70-b3-d5-00-00-00-00-01;Landis+Gyr;LG-CH1;V3.1.0;;1312345678907;"
            f"22/05/2016;LOND;Live;{NAME}, key safe",
            f"LG2;Smart Plug;70-b3-d5-00-00-00-00-02;Landis+Gyr;X;V1;;;22/05/2016;LOND;Live;{NAME}",
            f"LG3;Comms Hub;;;;;;;;;;{NAME};ragged",
        ],
        encoding="cp1252",
    )
    runner = CliRunner()
    secure = examples / "secure_moc_installations.csv"
    logs = ""
    for extract, mapping in ((noted, "landis_ioc_devices"), (secure, "secure_moc_installations")):
        result = runner.invoke(
            app,
            [
                "--log-level",
                "DEBUG",
                "ingest",
                str(extract),
                "-m",
                mapping,
                "-o",
                str(tmp_path / mapping),
                "--json",
            ],
        )
        assert result.exit_code == 1, result.output
        logs += result.stderr
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert {e["event"] for e in events} >= {"ingest.file.open", "ingest.file.read", "ingest.done"}
    postcodes = pq.read_table(tmp_path / "secure_moc_installations" / "installations.parquet")
    for postcode in set(postcodes.column("postcode").drop_null().to_pylist()):
        assert postcode not in logs
    assert "Zo" not in logs and "Bront" not in logs and "key safe" not in logs


def test_json_lines_when_not_a_terminal_readable_when_it_is() -> None:
    stream = io.StringIO()
    configure(level="INFO", stream=stream)
    get_logger("test").info("batch.read", rows=3)
    record = json.loads(stream.getvalue())
    assert record["event"] == "batch.read" and record["rows"] == 3 and record["level"] == "info"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    configure(level="INFO", stream=terminal)
    get_logger("test").info("batch.read", rows=3)
    assert "batch.read" in terminal.getvalue() and not terminal.getvalue().startswith("{")
