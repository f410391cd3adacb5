"""Read a plan's eligible installations as one Arrow table, for staging (and its excluded
ones, for reconciliation).

A plan lists hundreds of thousands of installations; json.loads turns them into millions of
Python objects (seven seconds at 300,000). The plan's layout puts each entry on a line of its
own (part of plan format 1), so the eligible section is newline-delimited JSON that Arrow's
JSON reader parses in C++. Staging rebuilds each payload from it with the plan's own JSON
writer and checks it against its fingerprint: an altered plan is refused.
"""

from __future__ import annotations

import io
import mmap
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pajson

from migrate.errors import ConfigError

SECTION = b'\n"eligible": ['
EXCLUDED_SECTION = b'\n"excluded": ['
PAYLOAD_SCHEMA = pa.struct(
    [
        pa.field("cohort", pa.string()),
        pa.field("installation_id", pa.string()),
        pa.field("smso", pa.string()),
        pa.field("supplier_mpid", pa.string()),
        pa.field("mode", pa.string()),
        pa.field("mpan_core", pa.string()),
        pa.field("mprn", pa.string()),
        pa.field("combination", pa.string()),
        pa.field("devices", pa.list_(pa.list_(pa.string()))),
    ]
)
ENTRY_SCHEMA = pa.schema(
    [
        pa.field("idempotency_key", pa.string()),
        pa.field("fingerprint", pa.string()),
        pa.field("day", pa.int64()),
        pa.field("date", pa.string()),
        pa.field("models", pa.string()),
        pa.field("payload", PAYLOAD_SCHEMA),
    ]
)


# What reconciliation needs of an excluded installation: who it is and why it was left out.
EXCLUDED_SCHEMA = pa.schema(
    [
        pa.field("installation_id", pa.string()),
        pa.field("supplier_mpid", pa.string()),
        pa.field("reasons", pa.list_(pa.string())),
    ]
)


def _section(
    path: Path, marker: bytes, schema: pa.Schema, *, unexpected: str, name: str
) -> pa.Table:
    """One list of the plan, one entry a line, parsed by Arrow's JSON reader. The file is
    mapped, not read: only the section is copied out of it."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start = data.find(marker)
        if start < 0:
            raise ConfigError(path, f"no {name} section: not a plan of version 1", key=name)
        start += len(marker)
        if data[start : start + 1] == b"]":
            return schema.empty_table()
        start += 1  # the line break after the bracket
        end = data.find(b"\n]", start)
        # Inside an entry no line breaks occur (JSON escapes them): ",\n" only joins entries.
        lines = data[start:end].replace(b",\n", b"\n")
    try:
        return pajson.read_json(
            io.BytesIO(lines),
            parse_options=pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior=unexpected
            ),
        )
    except pa.ArrowInvalid as error:
        raise ConfigError(path, f"the {name} section cannot be read: {error}") from None


def read_eligible(path: Path) -> pa.Table:
    """The eligible entries, the payload as a struct column."""
    return _section(path, SECTION, ENTRY_SCHEMA, unexpected="error", name="eligible")


def read_excluded(path: Path) -> pa.Table:
    """The excluded installations: id, supplier and reasons (not their findings)."""
    return _section(path, EXCLUDED_SECTION, EXCLUDED_SCHEMA, unexpected="ignore", name="excluded")
