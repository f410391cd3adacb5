"""Ingest: extract files, through one vendor mapping, into canonical devices and installations.

Every input row ends in exactly one place: accepted, quarantined with its reasons, or dropped
as an exact duplicate of a named earlier row. The summary states that identity and it holds.
Outputs are written to a scratch folder and moved into place only when complete, so a file
that cannot be read leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.dedup import find_duplicates, repeated, row_hashes, row_text
from migrate.errors import InputError
from migrate.extract import UnreadableRow, open_extract
from migrate.installations import (
    ROW_FIELDS,
    DeviceLinks,
    build_installations,
    conflicting_rows,
    installation_codes,
)
from migrate.logs import get_logger
from migrate.mapping import Mapping
from migrate.mapping.loader import MAPPINGS
from migrate.model import (
    DEVICE_SCHEMA,
    DUPLICATE_SCHEMA,
    ROW_ISSUE_SCHEMA,
    RowReason,
    RowWarning,
)
from migrate.normalise import (
    DEVICES_SCHEMA,
    ISSUE_SCHEMA,
    ROWS_SCHEMA,
    NormalisedBatch,
    normalise_batch,
)
from migrate.report.csv_export import write_csv

log = get_logger(__name__)


@dataclass(frozen=True)
class IngestSummary:
    """The counts a migration engineer checks; rows_read = accepted + quarantined + duplicates."""

    mapping: str
    files: list[str]
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    duplicates: int
    blank_rows: int
    trailer_rows: int
    devices: int
    installations: int
    installations_with_quarantined_rows: int
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    warnings_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_accepted + self.rows_quarantined + self.duplicates

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "balanced": self.balanced}


@dataclass(frozen=True)
class Ingested:
    summary: IngestSummary
    devices: pa.Table
    installations: pa.Table
    quarantine: pa.Table
    warnings: pa.Table
    duplicates: pa.Table
    # What the ingest found out about each device on the way, that validation would
    # otherwise find again: its installation's row in `installations`, whether its id is
    # listed more than once.
    device_links: DeviceLinks


@dataclass
class _Collected:
    """Everything read so far, across files. `row` is a dense index over all records."""

    names: list[str] = field(default_factory=list)
    rows: list[pa.Table] = field(default_factory=list)
    devices: list[pa.Table] = field(default_factory=list)
    issues: list[pa.Table] = field(default_factory=list)
    texts: list[pa.Array] = field(default_factory=list)
    hashes: list[np.ndarray] = field(default_factory=list)
    blank_rows: int = 0
    trailer_rows: int = 0
    records: int = 0
    ragged: list[int] = field(default_factory=list)  # row ids of rows cut short


# Batches normalised at once. Arrow's kernels release the GIL, so two threads use both
# cores of a migration engineer's laptop; more only hold more batches in memory.
NORMALISE_THREADS = 2


def _normalised(
    mapping: Mapping, batches: Iterator[tuple[pa.RecordBatch, np.ndarray]]
) -> Iterator[tuple[pa.Array, np.ndarray, NormalisedBatch, np.ndarray]]:
    """Each batch's row text, row hashes and canonical rows, in file order, computed by a
    small pool of threads a few batches ahead of the consumer."""

    def work(batch: pa.RecordBatch, ordinals: np.ndarray) -> tuple:
        text = row_text(batch)
        return text, row_hashes(text), normalise_batch(mapping, batch, ordinals), ordinals

    with ThreadPoolExecutor(max_workers=NORMALISE_THREADS) as pool:
        pending: deque[Future[tuple]] = deque()
        for batch, ordinals in batches:
            pending.append(pool.submit(work, batch, ordinals))
            if len(pending) > NORMALISE_THREADS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _read_file(mapping: Mapping, path: Path, collected: _Collected) -> None:
    """Stream one file through the mapping; only canonical columns and row texts are kept."""
    source = mapping.source
    reader = open_extract(
        path,
        mapping.columns(),
        format=source.format,
        encoding=source.encoding,
        delimiter=source.delimiter,
        header_row=source.header_row,
        trailer=source.trailer,
        sheet=source.sheet,
        max_value_lines=source.max_value_lines,
    )
    file_index = len(collected.names)
    collected.names.append(str(path))
    log.info("ingest.file.open", file=str(path), columns=len(reader.columns), **reader.described())
    started = time.perf_counter()
    parts: list[NormalisedBatch] = []
    base = collected.records
    last = -1
    for text, hashes, part, ordinals in _normalised(mapping, reader.batches()):
        collected.texts.append(text)
        collected.hashes.append(hashes)
        parts.append(part)
        last = int(ordinals[-1])
    collected.records = base + last + 1

    def placed(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        ordinals = table.column("ordinal").to_numpy()
        return (
            table.drop_columns(["ordinal"])
            .append_column("row", pa.array(ordinals + base, pa.int64()))
            .append_column("file", pa.array(np.full(len(ordinals), file_index, np.int32)))
            .append_column("source_row", pa.array(reader.source_rows(ordinals), pa.int64()))
        )

    rows = placed([p.rows for p in parts], ROWS_SCHEMA)
    collected.rows.append(rows)
    collected.devices.append(placed([p.devices for p in parts], DEVICES_SCHEMA))
    collected.issues.append(placed([p.issues for p in parts], ISSUE_SCHEMA))
    _add_unreadable(collected, reader.account.unreadable, file_index, mapping, reader.columns)
    collected.blank_rows += reader.account.blank_rows
    collected.trailer_rows += reader.account.trailer_rows
    log.info(
        "ingest.file.read",
        file=str(path),
        rows=rows.num_rows,
        unreadable=len(reader.account.unreadable),
        seconds=round(time.perf_counter() - started, 3),
    )


def _add_unreadable(
    collected: _Collected,
    unreadable: list[UnreadableRow],
    file_index: int,
    mapping: Mapping,
    columns: list[str],
) -> None:
    """Rows the reader could not split are rows all the same: quarantined as RAGGED_ROW,
    and counted against their installation (taken from the key's place) so that it shows
    as incomplete. Their text never leaves memory: it may hold customers' names."""
    if not unreadable:
        return
    count = len(unreadable)
    where = columns.index(mapping.installation.key)
    keys = [
        (row.cells[where].strip() or None) if len(row.cells) > where else None for row in unreadable
    ]
    ids = pa.array(range(collected.records, collected.records + count), pa.int64())
    # A row with fields to spare has its key whole; one cut short may have a cut key.
    collected.ragged.extend(
        collected.records + i for i, row in enumerate(unreadable) if len(row.cells) < len(columns)
    )
    collected.records += count
    placed = {
        "row": ids,
        "file": pa.array([file_index] * count, pa.int32()),
        "source_row": pa.array([row.row for row in unreadable], pa.int64()),
    }
    rows = {"installation_id": pa.array(keys, pa.string())}
    rows.update({f.name: pa.nulls(count, f.type) for f in ROW_FIELDS})
    collected.rows.append(pa.table({**rows, **placed}).select(collected.rows[-1].column_names))
    collected.issues.append(
        pa.table(
            {
                "installation_id": pa.array(keys, pa.string()),
                "column": pa.nulls(count, pa.string()),
                "value": pa.array([row.detail for row in unreadable], pa.string()),
                "reason": pa.repeat(pa.scalar(RowReason.RAGGED_ROW.value), count),
                "severity": pa.repeat(pa.scalar("error"), count),
                **placed,
            }
        ).select(collected.issues[-1].column_names)
    )
    # Its cells, marked apart from parsed rows' texts: a ragged line repeated exactly is a
    # duplicate like any other, and never the duplicate of a row that could be read.
    marks = pa.array(["\x00ragged\x00" + "\x1f".join(row.cells) for row in unreadable])
    collected.texts.append(marks)
    collected.hashes.append(row_hashes(marks))


def _known_keys_only(
    rows: pa.Table, issues: pa.Table, ragged: list[int]
) -> tuple[pa.Table, pa.Table]:
    """A row cut short counts against an installation only if a readable row names it too:
    a line cut inside the key would otherwise invent an installation."""
    if not ragged:
        return rows, issues
    ragged_ids = pa.array(ragged, pa.int64())
    is_ragged = pc.is_in(rows.column("row"), value_set=ragged_ids)
    known = pc.unique(rows.column("installation_id").filter(pc.invert(is_ragged)))
    orphan = pc.and_(
        is_ragged, pc.invert(pc.is_in(rows.column("installation_id"), value_set=known))
    )
    orphan_ids = rows.column("row").filter(orphan)

    def cleared(table: pa.Table, mask: pa.Array) -> pa.Table:
        index = table.schema.get_field_index("installation_id")
        column = pc.if_else(mask, pa.scalar(None, pa.string()), table.column(index))
        return table.set_column(index, "installation_id", column)

    return (
        cleared(rows, orphan),
        cleared(issues, pc.is_in(issues.column("row"), value_set=orphan_ids)),
    )


def _positions(collected: _Collected, rows: pa.Table) -> np.ndarray:
    """Map from the dense record index to a position in the rows table (-1: not a row)."""
    lookup = np.full(collected.records, -1, dtype=np.int64)
    lookup[rows.column("row").to_numpy()] = np.arange(rows.num_rows)
    return lookup


def _issues_of(
    hit: pa.Table, column: str, values: pa.Array, reason: str, severity: str
) -> pa.Table:
    """Issue entries for the rows of `hit` (which carry row, file and source_row)."""
    count = hit.num_rows
    return pa.table(
        {
            "installation_id": hit.column("installation_id"),
            "column": pa.repeat(pa.scalar(column), count),
            "value": values,
            "reason": pa.repeat(pa.scalar(reason), count),
            "severity": pa.repeat(pa.scalar(severity), count),
            "row": hit.column("row"),
            "file": hit.column("file"),
            "source_row": hit.column("source_row"),
        }
    )


def _issue_rows(positions: np.ndarray, field_name: str, rows: pa.Table, column: str) -> pa.Table:
    """Quarantine entries for rows of one installation that disagree on a field."""
    hit = rows.take(pa.array(positions))
    return _issues_of(
        hit,
        column,
        hit.column(field_name).cast(pa.string()),
        RowReason.CONFLICTING_INSTALLATION_FIELD.value,
        "error",
    )


def ingest(
    paths: Sequence[Path],
    mapping: Mapping | str,
    *,
    mappings_dir: Path | None = None,
    writer: OutputWriter | None = None,
) -> Ingested:
    """Read, normalise, deduplicate and group; every row accounted for in the summary. With
    a writer, each output starts on its way to disk as soon as it is final."""
    if isinstance(mapping, str):
        # Which file a name resolved to: a local folder's copy may stand in for a shipped one.
        path = MAPPINGS.resolve(mapping, mappings_dir)
        log.info(
            "ingest.mapping",
            mapping=mapping,
            file=str(path),
            memory_pool=pa.default_memory_pool().backend_name,
        )
        mapping = MAPPINGS.load_file(path)
    _refuse_repeated([Path(path) for path in paths])
    collected = _Collected()
    for path in paths:
        _read_file(mapping, Path(path), collected)
    # Work that needs only what is read runs beside the grouping, on the second core: Arrow's
    # and numpy's kernels leave the interpreter's lock while they run.
    with ThreadPoolExecutor(max_workers=1) as beside:
        return _settle(mapping, collected, beside, writer)


def _refuse_repeated(paths: Sequence[Path]) -> None:
    """The same file given twice would have each of its rows a duplicate of itself."""
    seen: dict[Path, Path] = {}
    for path in paths:
        real = path.resolve()
        if real in seen:
            raise InputError(path, f"is given twice (also as {seen[real]}): give each extract once")
        seen[real] = path


def _settle(
    mapping: Mapping,
    collected: _Collected,
    beside: ThreadPoolExecutor,
    writer: OutputWriter | None,
) -> Ingested:
    """Every row read, placed: a duplicate, quarantined or accepted into an installation."""
    # What was read is taken out of `collected`: each part can go as soon as what replaces
    # it is made (the row texts once duplicates are found, a batch's rows once joined), so
    # that it is never held twice: fresh memory is the dearest part of a run.
    texts = pa.chunked_array(collected.texts, pa.string())
    hashes = np.concatenate(collected.hashes) if collected.hashes else np.empty(0, np.uint64)
    collected.texts, collected.hashes = [], []
    duplicates_found = beside.submit(find_duplicates, hashes, texts)
    del texts, hashes
    # One chunk per column: every later take and filter would otherwise join the chunks.
    rows = pa.concat_tables(collected.rows).combine_chunks()
    devices = pa.concat_tables(collected.devices)
    issues = pa.concat_tables(collected.issues)
    collected.rows, collected.devices, collected.issues = [], [], []
    rows, issues = _known_keys_only(rows, issues, collected.ragged)
    file_names = pa.array(collected.names, pa.string())
    position_of = _positions(collected, rows)
    n = rows.num_rows
    codes, keys = installation_codes(rows.column("installation_id"))

    duplicate, original = duplicates_found.result()
    counted = np.ones(n, dtype=bool)
    counted[duplicate] = False

    issue_position = position_of[issues.column("row").to_numpy()]
    issues = issues.filter(pa.array(counted[issue_position]))
    issue_position = position_of[issues.column("row").to_numpy()]
    is_error = pc.equal(issues.column("severity"), "error").to_numpy(zero_copy_only=False)
    rejected = np.zeros(n, dtype=bool)
    rejected[issue_position[is_error]] = True

    conflicts = conflicting_rows(rows, codes, counted & ~rejected, len(keys))
    for name, positions, _ in conflicts:
        rejected[positions] = True
        issues = pa.concat_tables(
            [issues, _issue_rows(positions, name, rows, f"({name})").select(issues.column_names)]
        )

    accepted = counted & ~rejected
    device_position = position_of[devices.column("row").to_numpy()]
    keep = accepted[device_position]
    # The accepted devices' table is made beside the installations, which are counted from
    # every device read, each with its installation's code or -1 where its row was refused.
    accepted_devices = beside.submit(_accepted_devices, devices, keep, file_names)
    code_of_device = np.where(keep, codes[device_position], -1)
    installations, row_of_code = build_installations(
        rows,
        codes,
        keys,
        counted=counted,
        rejected=rejected,
        devices=devices,
        device_codes=code_of_device,
        file_names=file_names,
        disputed={name: disputed for name, _, disputed in conflicts},
    )
    del devices
    device_table, repeated_device, repeated_device_issues = accepted_devices.result()
    if writer is not None:
        writer.parquet(device_table, "devices.parquet")
    device_codes = code_of_device[keep]
    errors = issues.filter(pc.equal(issues.column("severity"), "error"))
    quarantine = _row_issues(errors, file_names)
    warnings = _row_issues(
        pa.concat_tables(
            [
                issues.filter(pc.equal(issues.column("severity"), "warning")),
                repeated_device_issues.select(issues.column_names),
            ]
        ),
        file_names,
    )
    duplicates = _duplicate_table(rows, duplicate, original, file_names)

    accepted_count = int(accepted.sum())
    summary = IngestSummary(
        mapping=mapping.name,
        files=list(collected.names),
        rows_read=n,
        rows_accepted=accepted_count,
        rows_quarantined=int((counted & rejected).sum()),
        duplicates=len(duplicate),
        blank_rows=collected.blank_rows,
        trailer_rows=collected.trailer_rows,
        devices=device_table.num_rows,
        installations=installations.num_rows,
        installations_with_quarantined_rows=int(
            np.count_nonzero(installations.column("quarantined_rows").to_numpy())
        ),
        quarantined_by_reason=_counts(quarantine.column("reason")),
        warnings_by_reason=_counts(warnings.column("reason")),
    )
    log.info(
        "ingest.done",
        mapping=mapping.name,
        rows_read=summary.rows_read,
        accepted=summary.rows_accepted,
        quarantined=summary.rows_quarantined,
        duplicates=summary.duplicates,
        balanced=summary.balanced,
    )
    links = DeviceLinks(
        installation=np.where(device_codes >= 0, row_of_code[device_codes], -1),
        repeated=repeated_device,
    )
    ingested = Ingested(
        summary, device_table, installations, quarantine, warnings, duplicates, links
    )
    if writer is not None:
        _write_after_devices(writer, ingested)
    return ingested


def _accepted_devices(
    devices: pa.Table, keep: np.ndarray, file_names: pa.Array
) -> tuple[pa.Table, np.ndarray, pa.Table]:
    """The devices of accepted rows as the model's table; which of them have an id listed
    more than once, and the warnings for those: a device cannot hang off two hubs, and
    validation excludes every installation involved."""
    devices = devices.filter(pa.array(keep))
    flags = repeated(devices.column("device_id"))
    hit = devices.filter(pa.array(flags))
    issues = _issues_of(
        hit, "(device_id)", hit.column("device_id"), RowWarning.DUPLICATE_DEVICE_ID.value, "warning"
    )
    table = _with_file_names(devices, file_names).select(DEVICE_SCHEMA.names)
    return table.cast(DEVICE_SCHEMA), flags, issues


def _with_file_names(table: pa.Table, file_names: pa.Array) -> pa.Table:
    return table.append_column("source_file", file_names.take(table.column("file")))


def _counts(values: pa.ChunkedArray) -> dict[str, int]:
    counted = pc.value_counts(values).to_pylist()
    return {item["values"]: item["counts"] for item in sorted(counted, key=lambda i: i["values"])}


def _row_issues(issues: pa.Table, file_names: pa.Array) -> pa.Table:
    """In file order, then row order, then column: the order a person reads them in."""
    ordered = issues.sort_by(
        [("file", "ascending"), ("source_row", "ascending"), ("column", "ascending")]
    )
    return (
        _with_file_names(ordered, file_names).select(ROW_ISSUE_SCHEMA.names).cast(ROW_ISSUE_SCHEMA)
    )


def _duplicate_table(
    rows: pa.Table, duplicate: np.ndarray, original: np.ndarray, file_names: pa.Array
) -> pa.Table:
    files = rows.column("file")
    source_rows = rows.column("source_row")
    table = pa.table(
        {
            "source_file": file_names.take(files.take(pa.array(duplicate, pa.int64()))),
            "source_row": source_rows.take(pa.array(duplicate, pa.int64())),
            "duplicate_of_file": file_names.take(files.take(pa.array(original, pa.int64()))),
            "duplicate_of_row": source_rows.take(pa.array(original, pa.int64())),
        }
    )
    return table.take(pa.array(np.argsort(duplicate, kind="stable"))).cast(DUPLICATE_SCHEMA)


OUTPUT_FILES = (
    "devices.parquet",
    "installations.parquet",
    "quarantine.parquet",
    "quarantine.csv",
    "warnings.csv",
    "duplicates.csv",
    "summary.json",
)


# Columns with few distinct values: dictionary encoding pays. Identifiers are near-unique,
# where it only costs time.
_DICTIONARY_COLUMNS = {
    "device_type",
    "manufacturer",
    "model",
    "firmware_version",
    "firmware_raw",
    "smi_status",
    "smso",
    "supplier_mpid",
    "mode",
    "source_file",
    "column",
    "reason",
}


def _write_parquet(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq  # only where outputs are written: a plan writes none

    dictionary = [name for name in table.column_names if name in _DICTIONARY_COLUMNS]
    pq.write_table(table, path, use_dictionary=dictionary)


class OutputWriter:
    """All outputs or none: each is written to a scratch folder beside out_dir as soon as it
    is final (Arrow's writers release the GIL, so writing overlaps the work still to do), and
    only moved into out_dir once every one is written."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        # The folders above out_dir this run makes: an ingest that fails takes them away too.
        self._made = [p for p in (out_dir.parent, *out_dir.parent.parents) if not p.exists()]
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix=".ingest-", dir=out_dir.parent))
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._jobs: list[Future[None]] = []

    def parquet(self, table: pa.Table, name: str) -> None:
        self._jobs.append(self._pool.submit(_write_parquet, table, self.scratch / name))

    def csv(self, table: pa.Table, name: str) -> None:
        self._jobs.append(self._pool.submit(write_csv, table, self.scratch / name))

    def finish(self, summary: IngestSummary) -> list[Path]:
        for job in self._jobs:
            job.result()
        (self.scratch / "summary.json").write_text(
            json.dumps(summary.as_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        self.out_dir.mkdir(exist_ok=True)
        written = []
        for name in OUTPUT_FILES:
            os.replace(self.scratch / name, self.out_dir / name)
            written.append(self.out_dir / name)
        self._made = []
        return written

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.scratch, ignore_errors=True)
        for folder in self._made:  # deepest first; one that holds anything else stays
            with contextlib.suppress(OSError):
                folder.rmdir()

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def write_outputs(ingested: Ingested, out_dir: Path) -> list[Path]:
    """Every output of an ingest already made, whole or not at all."""
    with OutputWriter(out_dir) as writer:
        writer.parquet(ingested.devices, "devices.parquet")
        _write_after_devices(writer, ingested)
        return writer.finish(ingested.summary)


def _write_after_devices(writer: OutputWriter, ingested: Ingested) -> None:
    writer.parquet(ingested.installations, "installations.parquet")
    writer.parquet(ingested.quarantine, "quarantine.parquet")
    writer.csv(ingested.quarantine, "quarantine.csv")
    writer.csv(ingested.warnings, "warnings.csv")
    writer.csv(ingested.duplicates, "duplicates.csv")
