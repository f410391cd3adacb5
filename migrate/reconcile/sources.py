"""The three sides of a reconciliation, loaded as Arrow tables: the supplier's extract (or a
warehouse report), the store (what was staged, sent and answered) and the DCC's inventory.

Extract and inventory are read through a mapping like any extract (`migrate.ingest`), so a
DCC inventory of another shape is a new mapping file, not new code. The store side is the
batch's requests (state, reason, attempts, when they last moved) and devices, read column-wise
(`migrate.store.columns`), and the installations the batch's plan excluded, read from the
plan after checking that it is the one staged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from sqlalchemy import ColumnElement, Connection, Table, literal_column, select

from migrate.errors import InputError, TerminalError
from migrate.ingest import ingest
from migrate.input_records import file_digest
from migrate.mapping.loader import MAPPINGS
from migrate.mapping.spec import Mapping
from migrate.plan_reader import read_excluded
from migrate.store.columns import read_table
from migrate.store.schema import batches, devices, requests

# The device fields compared; a side whose mapping does not read one is not compared on it.
COMPARED_FIELDS = ("firmware_version", "mpxn", "smi_status")
SIDE_DEVICE_COLUMNS = ("installation_id", "device_id", "device_type", *COMPARED_FIELDS)
STORE_DEVICE_COLUMNS = ("installation_id", "device_id", "device_type", "firmware_version", "mpxn")
REQUEST_SCHEMA = pa.schema(
    [
        pa.field("installation_id", pa.string()),
        pa.field("supplier_mpid", pa.string()),
        pa.field("state", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("retryable", pa.bool_()),
        pa.field("attempts", pa.int64()),
        pa.field("sends", pa.int64()),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)
STORE_DEVICE_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in STORE_DEVICE_COLUMNS])
OTHER_BATCH_SCHEMA = pa.schema(
    [pa.field("installation_id", pa.string()), pa.field("batch", pa.string())]
)
LOOKUP = 5_000


class PlanChanged(TerminalError):
    """The batch's plan changed since it was staged: its excluded list may not be the one
    the batch was made with."""


@dataclass(frozen=True)
class SourceFile:
    """What the report repeats of an input: its name, size and SHA-256 (which names it)."""

    name: str
    bytes: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> SourceFile:
        return cls(path.name, path.stat().st_size, file_digest(path))

    def as_dict(self) -> dict[str, object]:
        return {"file": self.name, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True)
class MappedSide:
    """An extract or an inventory read through a mapping.

    devices: SIDE_DEVICE_COLUMNS, one row per accepted device row; installations: every
    installation it names with its quarantined rows; quarantine: the rows it could not use;
    provides: the COMPARED_FIELDS its mapping reads."""

    file: SourceFile
    mapping: SourceFile
    mapping_name: str
    summary: dict[str, object]
    devices: pa.Table
    installations: pa.Table
    quarantine: pa.Table
    provides: frozenset[str]


@dataclass(frozen=True)
class StoreSide:
    """The batch in the store: its requests (REQUEST_SCHEMA), the devices they carry
    (STORE_DEVICE_COLUMNS), and the installations its plan excluded (installation_id,
    supplier_mpid, reasons)."""

    batch: str
    cohort: str
    plan: SourceFile
    requests: pa.Table
    devices: pa.Table
    excluded: pa.Table


def mapped_fields(mapping: Mapping) -> frozenset[str]:
    """The compared device fields a mapping reads. A wide layout gives its meters the
    installation's MPAN core and MPRN as their MPxN."""
    if mapping.device is not None:
        return frozenset(COMPARED_FIELDS) & set(mapping.device.fields)
    names = {name for group in mapping.devices or [] for name in group.fields}
    if {"mpan_core", "mprn"} & set(mapping.installation.fields):
        names.add("mpxn")
    return frozenset(COMPARED_FIELDS) & names


def read_side(path: Path, mapping_name: str, mappings_dir: Path | None = None) -> MappedSide:
    """A file through its mapping, kept to what the comparison needs."""
    mapping_path = MAPPINGS.resolve(mapping_name, mappings_dir)
    mapping = MAPPINGS.load_file(mapping_path)
    ingested = ingest([path], mapping)
    summary = ingested.summary.as_dict()
    summary.pop("files")
    return MappedSide(
        file=SourceFile.of(path),
        mapping=SourceFile.of(mapping_path),
        mapping_name=mapping.name,
        summary=summary,
        devices=ingested.devices.select(list(SIDE_DEVICE_COLUMNS)).combine_chunks(),
        installations=ingested.installations.select(
            ["installation_id", "quarantined_rows"]
        ).combine_chunks(),
        quarantine=ingested.quarantine.select(
            ["source_row", "installation_id", "column", "value", "reason"]
        ),
        provides=mapped_fields(mapping),
    )


def _plan_path(recorded: str) -> Path:
    path = Path(recorded)
    if not path.is_file():
        raise InputError(
            path,
            "the batch's plan is not there (its excluded installations are read from it): "
            "run from the folder it was staged in, or restore the plan file",
        )
    return path


def _of_batch(connection: Connection, table: Table, batch: str) -> ColumnElement[bool]:
    """The rows of one batch. On SQLite, named by rowid through the batch's index and then
    visited in table order: half the time of following the index row by row."""
    where = table.c.batch == batch
    if connection.dialect.name != "sqlite":
        return where
    rowid = literal_column("rowid")
    return rowid.in_(select(rowid).select_from(table).where(where))


def read_store(connection: Connection, batch: str) -> StoreSide:
    """The batch's requests and devices from the store, and the installations its plan
    excluded, after checking that the plan is the one staged."""
    found = connection.execute(
        select(batches.c.cohort, batches.c.plan_sha256, batches.c.plan_path).where(
            batches.c.name == batch
        )
    ).first()
    if found is None:
        raise InputError("store", f"no batch {batch!r} in the store")
    plan_path = _plan_path(found.plan_path)
    plan = SourceFile.of(plan_path)
    if plan.sha256 != found.plan_sha256:
        raise PlanChanged(
            f"{plan_path}: the plan changed since batch {batch!r} was staged from it "
            f"(staged {found.plan_sha256[:12]}, now {plan.sha256[:12]})"
        )
    request_rows = read_table(
        connection,
        select(*(requests.c[name] for name in REQUEST_SCHEMA.names)).where(
            _of_batch(connection, requests, batch)
        ),
        REQUEST_SCHEMA,
    )
    device_rows = read_table(
        connection,
        select(*(devices.c[name] for name in STORE_DEVICE_COLUMNS)).where(
            _of_batch(connection, devices, batch)
        ),
        STORE_DEVICE_SCHEMA,
    )
    return StoreSide(batch, found.cohort, plan, request_rows, device_rows, read_excluded(plan_path))


def other_batches(connection: Connection, batch: str, ids: list[str]) -> pa.Table:
    """Of these installations, those requested in another batch of the store, with it."""
    found: list[tuple[str, str]] = []
    for start in range(0, len(ids), LOOKUP):
        query = (
            select(requests.c.installation_id, requests.c.batch)
            .where(requests.c.installation_id.in_(ids[start : start + LOOKUP]))
            .where(requests.c.batch != batch)
            .order_by(requests.c.installation_id, requests.c.batch)
        )
        found.extend((row.installation_id, row.batch) for row in connection.execute(query))
    # An installation requested in several other batches: the first by name stands for them.
    first: dict[str, str] = {}
    for installation, other in found:
        first.setdefault(installation, other)
    return pa.table(
        {
            "installation_id": pa.array(list(first), pa.string()),
            "batch": pa.array(list(first.values()), pa.string()),
        },
        schema=OTHER_BATCH_SCHEMA,
    )
