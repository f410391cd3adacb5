"""The dry-run plan: which installations a cohort run would send, which not and why, and how
long the eligible set takes at the cohort's capacity.

A plan records the content hashes of everything it was made from, so that a go-live run can
refuse a plan whose inputs changed since (as `terraform apply` refuses a stale plan). Nothing
in it depends on the clock: the same inputs give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any, NotRequired

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

from migrate import __version__, json_text
from migrate.chunks import single
from migrate.cohort.loader import COHORTS
from migrate.cohort.spec import CohortRules
from migrate.config_files import validation_problem
from migrate.errors import ConfigError
from migrate.ingest import Ingested, ingest
from migrate.input_records import records_beside
from migrate.mapping.loader import MAPPINGS
from migrate.model import PAYLOAD_DEVICE_FIELDS as DEVICE_FIELDS
from migrate.validate import DeviceModels, Validation, validate
from migrate.whole_file import write_whole

PLAN_VERSION = 1
PAYLOAD_FIELDS = ("installation_id", "smso", "supplier_mpid", "mode", "mpan_core", "mprn")
EXCLUDED_FIELDS = ("installation_id", "smso", "supplier_mpid", "mode", "mpan_core", "mprn")
FINDING_FIELDS = ("device_id", "device_type", "manufacturer", "model", "firmware_version")
QUARANTINE_FIELDS = ("source_file", "source_row", "installation_id", "column", "value", "reason")


@dataclass(frozen=True)
class PlanSummary:
    cohort: str
    installations: int
    eligible: int
    excluded: int
    excluded_by_reason: dict[str, int]
    days: int
    finish: str  # the schedule's last day, ISO
    window_end: str
    fits_window: bool

    def as_dict(self) -> dict[str, object]:
        """The counts, as the plan file's summary records them."""
        return {
            "cohort": self.cohort,
            "installations": self.installations,
            "eligible": self.eligible,
            "excluded": self.excluded,
            "excluded_by_reason": self.excluded_by_reason,
            "days": self.days,
        }

    def with_window(self) -> dict[str, object]:
        """The counts and whether the schedule ends inside the cohort's window: what
        `migrate plan --json` prints."""
        return {
            **self.as_dict(),
            "finish": self.finish,
            "window_end": self.window_end,
            "fits_window": self.fits_window,
        }


@dataclass(frozen=True)
class Plan:
    """A plan's counts, and its text, made as it is written: the eligible entries are built a
    piece at a time while the pieces before them are written, and never held whole."""

    summary: PlanSummary
    chunks: Callable[[], Iterator[bytes | pa.Buffer]]  # the text, made afresh at each call

    def write(self, path: Path) -> None:
        write_whole(path, self.chunks())

    @property
    def text(self) -> str:
        return b"".join(bytes(chunk) for chunk in self.chunks()).decode("utf-8")


def schedule(
    suppliers: pa.Array | pa.ChunkedArray, rules: CohortRules, start: dt.date
) -> tuple[np.ndarray, dict[str, object]]:
    """Each eligible installation's day (1-based) at the cohort's capacity per supplier per
    day, in the order given; and the schedule's summary."""
    capacity = rules.capacity_per_supplier_per_day
    suppliers = single(suppliers)
    encoded = pc.dictionary_encode(pc.fill_null(suppliers, "(unknown)"))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(codes, kind="stable")
    rank = np.empty(len(codes), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(encoded.dictionary)))])
    rank[order] = np.arange(len(codes)) - starts[codes[order]]
    day = rank // capacity + 1
    by_supplier = []
    names = encoded.dictionary.to_pylist()
    counts = np.bincount(codes, minlength=len(names))
    for index in np.argsort(names):
        eligible = int(counts[index])
        days = -(-eligible // capacity)
        by_supplier.append(
            {
                "supplier_mpid": names[index],
                "eligible": eligible,
                "days": days,
                "finish": (start + dt.timedelta(days=max(days - 1, 0))).isoformat(),
            }
        )
    days = int(day.max()) if len(day) else 0
    finish = start + dt.timedelta(days=max(days - 1, 0))
    summary = {
        "start": start.isoformat(),
        "capacity_per_supplier_per_day": capacity,
        "days": days,
        "finish": finish.isoformat(),
        "window_end": rules.window.end.isoformat(),
        "fits_window": finish <= rules.window.end,
        "by_supplier": by_supplier,
    }
    return day, summary


# Each byte's two hex digits, as the 16-bit word whose bytes in memory spell them.
_HEX_PAIRS = np.array(
    [int.from_bytes(f"{byte:02x}".encode(), "little") for byte in range(256)], dtype="<u2"
)
_DIGEST_BYTES = hashlib.sha256().digest_size


def _digests(texts: pa.Array) -> np.ndarray:
    """SHA-256 of each text, one row of bytes each. There is no vectorised SHA-256 in Arrow
    or numpy; this is the one loop over installations, fed slices of the Arrow buffer
    without copying them."""
    width = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(texts.buffers()[1], dtype=width)[
        texts.offset : texts.offset + len(texts) + 1
    ].tolist()
    data = memoryview(texts.buffers()[2]) if texts.buffers()[2] is not None else memoryview(b"")
    sha256 = hashlib.sha256
    joined = b"".join([sha256(data[a:b]).digest() for a, b in pairwise(offsets)])
    return np.frombuffer(joined, dtype=np.uint8).reshape(len(texts), _DIGEST_BYTES)


def _hex(digests: np.ndarray, quote: bytes = b"") -> pa.Array:
    """The digests spelt in hex by numpy, all at once; each between `quote`s if given (a
    JSON string literal needs no escaping in hex)."""
    n = len(digests)
    width = 2 * _DIGEST_BYTES + 2 * len(quote)
    spelt = np.empty((n, width), dtype=np.uint8)
    if quote:
        spelt[:, 0] = spelt[:, -1] = quote[0]
    spelt[:, len(quote) : width - len(quote)] = _HEX_PAIRS[digests].view(np.uint8)
    return pa.StringArray.from_buffers(
        n,
        pa.py_buffer(np.arange(0, width * n + 1, width, dtype=np.int32)),
        pa.py_buffer(spelt),
    )


def sha256_each(texts: pa.Array) -> pa.Array:
    """SHA-256 of each text, in hex."""
    return _hex(_digests(texts))


def _interleave(items: list[pa.Array], separator: str) -> list[pa.Array | str]:
    joined: list[pa.Array | str] = []
    for index, item in enumerate(items):
        if index:
            joined.append(separator)
        joined.append(item)
    return joined


def device_lists_json(
    fields: Sequence[json_text.Piece], owners: np.ndarray, count: int
) -> pa.Array:
    """Per installation, its devices as JSON arrays of DEVICE_FIELDS, in the order given:
    each field a Text column, or JSON fragments of fields side by side. Arrays, not objects:
    a million devices would repeat their field names a million times. Staging rebuilds
    payloads with this same function, so the bytes match the plan's."""
    items = json_text.joined("[", *_interleave(list(fields), ","), "]")
    return json_text.grouped(items, owners, count)


# A device's fields that its model holds (type, manufacturer, model, firmware), side by side
# in the payload: written once per distinct model as one fragment, which each device takes.
MODEL_FIELDS = DeviceModels.COLUMNS
OWN_DEVICE_FIELDS = tuple(name for name in DEVICE_FIELDS if name not in MODEL_FIELDS)


def _model_json(models: pa.Table) -> pa.Array:
    """Per distinct model, its fields as JSON, joined by commas as they stand in a device's
    array."""
    return json_text.joined(
        *_interleave([json_text.Text(models.column(name)) for name in MODEL_FIELDS], ",")
    )


def _device_fields(devices: pa.Table, models: pa.Array) -> list[json_text.Piece]:
    """The pieces of DEVICE_FIELDS: the devices' own columns, and their models' fragments in
    place of the model's fields."""
    pieces: list[json_text.Piece] = []
    for name in DEVICE_FIELDS:
        if name == MODEL_FIELDS[0]:
            pieces.append(models)
        elif name not in MODEL_FIELDS:
            pieces.append(json_text.Text(devices.column(name)))
    return pieces


def payload_json(cohort: str, fields: dict[str, pa.Array], device_lists: pa.Array) -> pa.Array:
    """The request payload of each installation: what is sent, and what the fingerprint
    covers."""
    return json_text.objects(
        {
            "cohort": json.dumps(cohort, ensure_ascii=False),
            **{name: json_text.Text(fields[name]) for name in PAYLOAD_FIELDS},
            "combination": json_text.Text(fields["combination"]),
            "devices": device_lists,
        }
    )


# Eligible installations written at once. Each piece's texts are made, hashed and joined
# while they are a few MB, two pieces at a time (Arrow's kernels release the GIL): made
# whole, every step copied hundreds of MB into fresh memory, the dearest thing on a VM.
PIECE = 8192
PIECE_THREADS = 2


@dataclass(frozen=True)
class _EligibleSet:
    """The eligible installations in the plan's order (supplier, then id), each one's day,
    and its devices in payload order: sorted by installation, then type, then id."""

    cohort: str
    installations: pa.Table
    day: np.ndarray
    dates: pa.Array
    devices: pa.Table  # OWN_DEVICE_FIELDS, one chunk a column: each piece takes its rows
    device_models: np.ndarray  # per row of `devices`, its row in `model_json`
    model_json: pa.Array  # per distinct model, its fields' fragment
    device_rows: np.ndarray  # rows of `devices` in payload order
    device_starts: np.ndarray  # where each installation's devices start in device_rows

    def entries(self, start: int, stop: int) -> pa.Buffer:
        """The plan's entries for installations start..stop-1, joined one to a line."""
        part = self.installations.slice(start, stop - start)
        first, last = self.device_starts[start], self.device_starts[stop]
        # A take in payload order reads the devices all over memory: each piece its own.
        rows = self.device_rows[first:last]
        devices = self.devices.take(pa.array(rows))
        device_lists = device_lists_json(
            _device_fields(devices, self.model_json.take(pa.array(self.device_models[rows]))),
            np.repeat(np.arange(stop - start), np.diff(self.device_starts[start : stop + 1])),
            stop - start,
        )
        # The key names the request: cohort, installation and its exact device and firmware
        # set.
        keys = _digests(
            pc.binary_join_element_wise(
                pa.repeat(pa.scalar(self.cohort), part.num_rows),
                single(part.column("installation_id")),
                device_lists,
                "\n",
            )
        )
        payload = payload_json(
            self.cohort,
            {name: part.column(name) for name in (*PAYLOAD_FIELDS, "combination")},
            device_lists,
        )
        del device_lists
        return json_text.joined_lines(
            '{"idempotency_key":',
            _hex(keys, quote=b'"'),
            ',"fingerprint":',
            _hex(_digests(payload), quote=b'"'),
            ',"day":',
            pa.array(self.day[start:stop]).cast(pa.string()),
            ',"date":',
            json_text.Text(self.dates.slice(start, stop - start)),
            ',"models":',
            json_text.Text(part.column("models")),
            ',"payload":',
            payload,
            "}",
        )


def _eligible_set(
    validation: Validation, devices: pa.Table, rules: CohortRules, start: dt.date
) -> tuple[_EligibleSet, dict[str, object]]:
    """The eligible set and the schedule's summary. `devices`: the ingest's devices, only
    OWN_DEVICE_FIELDS, one chunk a column."""
    installations = validation.installations
    rows = np.flatnonzero(installations.column("eligible").to_numpy(zero_copy_only=False))
    listing = pc.sort_indices(
        installations.select(["supplier_mpid", "installation_id"]).take(pa.array(rows)),
        sort_keys=[("supplier_mpid", "ascending"), ("installation_id", "ascending")],
    )
    rows = rows[listing.to_numpy()]
    eligible = installations.select([*PAYLOAD_FIELDS, "combination", "models", "devices"]).take(
        pa.array(rows)
    )
    day, timetable = schedule(eligible.column("supplier_mpid"), rules, start)
    calendar = pa.array(
        [
            (start + dt.timedelta(days=offset)).isoformat()
            for offset in range(int(day.max(initial=0)))
        ],
        pa.string(),
    )
    # Each device's place in the eligible list (-1: not eligible), then payload order.
    place = np.full(installations.num_rows + 1, -1, dtype=np.int64)
    place[rows] = np.arange(len(rows))
    owner = place[validation.device_installation]  # -1 (no installation) reads the extra
    models = validation.device_models
    payload_order = _payload_order(owner, models, single(devices.column("device_id")))
    per = np.bincount(owner[owner >= 0], minlength=len(rows))
    eligible_set = _EligibleSet(
        cohort=rules.name,
        installations=eligible,
        day=day,
        dates=calendar.take(pa.array(day - 1)),
        devices=devices,
        device_models=models.of_device,
        model_json=_model_json(models.table),
        device_rows=payload_order,
        device_starts=np.concatenate([[0], np.cumsum(per)]),
    )
    return eligible_set, timetable


def _payload_order(owner: np.ndarray, models: DeviceModels, device_id: pa.Array) -> np.ndarray:
    """The rows of the devices that have an owner (>= 0), by owner, then type, then id.

    Sorted by owner and type (ranked once per model) as one integer (numpy's stable sort
    finds the runs of an extract already in order); only the few devices sharing an owner
    and a type are then sorted by id, by Arrow: a sort on all three columns took three times
    as long."""
    types = models.table.column("device_type").to_pylist()
    names = sorted({name for name in types if name is not None})
    # A device without a type goes after the typed ones.
    rank_of = {name: rank for rank, name in enumerate(names)}
    model_rank = np.array([rank_of.get(name, len(names)) for name in types], dtype=np.int64)
    key = owner * (len(names) + 1) + model_rank[models.of_device]
    order = np.argsort(key, kind="stable")[np.count_nonzero(owner < 0) :]
    ordered = key[order]
    same = ordered[1:] == ordered[:-1]
    tied = np.zeros(len(order), dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    if tied.any():
        places = np.flatnonzero(tied)
        rows = order[places]
        by_id = pc.sort_indices(
            pa.table({"key": key[rows], "device_id": device_id.take(rows)}),
            sort_keys=[("key", "ascending"), ("device_id", "ascending")],
        )
        order[places] = rows[by_id.to_numpy()]
    return order


# Pieces asked of the threads ahead of the one being written: enough to keep both busy.
PIECES_AHEAD = 2 * PIECE_THREADS


def _entries_in_order(eligible: _EligibleSet, pool: ThreadPoolExecutor) -> Iterator[pa.Buffer]:
    """The eligible entries piece by piece, in order, made by the pool a few pieces ahead."""
    count = eligible.installations.num_rows
    pending: deque[Future[pa.Buffer]] = deque()
    for first in range(0, count, PIECE):
        pending.append(pool.submit(eligible.entries, first, min(first + PIECE, count)))
        if len(pending) > PIECES_AHEAD:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _when_made(part: Future[pa.Buffer]) -> Iterator[pa.Buffer]:
    """A part another thread is making, waited for only when it is to be written."""
    yield part.result()


def _excluded_json(validation: Validation) -> pa.Array:
    excluded = validation.excluded
    excluded = excluded.take(
        pc.sort_indices(excluded, sort_keys=[("installation_id", "ascending")])
    )
    findings = validation.findings
    codes = pc.index_in(
        findings.column("installation_id"), value_set=excluded.column("installation_id")
    )
    findings = findings.filter(codes.is_valid())
    codes = codes.filter(codes.is_valid())
    items = json_text.objects(
        {
            **{name: json_text.Text(findings.column(name)) for name in FINDING_FIELDS},
            "reason": json_text.Text(findings.column("reason")),
        }
    )
    finding_lists = json_text.grouped(
        items, codes.to_numpy(zero_copy_only=False).astype(np.int64), excluded.num_rows
    )
    return json_text.objects(
        {
            **{name: json_text.Text(excluded.column(name)) for name in EXCLUDED_FIELDS},
            "models": json_text.Text(excluded.column("models")),
            "devices": json_text.numbers(excluded.column("devices")),
            "quarantined_rows": json_text.numbers(excluded.column("quarantined_rows")),
            "reasons": json_text.string_lists(excluded.column("reasons")),
            "findings": finding_lists,
        }
    )


def _quarantine_json(ingested: Ingested) -> pa.Array:
    quarantine = ingested.quarantine
    return json_text.objects(
        {
            name: (
                json_text.numbers(quarantine.column(name))
                if name == "source_row"
                else json_text.strings(quarantine.column(name))
            )
            for name in QUARANTINE_FIELDS
        }
    )


def make_plan(
    extracts: Sequence[Path],
    mapping: str,
    cohort: str,
    *,
    as_of: dt.date | None = None,
    mappings_dir: Path | None = None,
    cohorts_dir: Path | None = None,
    extract_records: Future[list[dict[str, object]]] | None = None,
) -> Plan:
    """Ingest, validate and schedule; nothing is written to any store. `extract_records`:
    the extracts' records (`input_records.records_beside`) if the caller began taking them
    already, as `migrate plan` does while the plan's modules load."""
    mapping_path = MAPPINGS.resolve(mapping, mappings_dir)
    cohort_path = COHORTS.resolve(cohort, cohorts_dir)
    rules = COHORTS.load_file(cohort_path)
    start = max(as_of or rules.window.start, rules.window.start)
    if start > rules.window.end:
        raise ConfigError(
            cohort_path,
            f"the plan's date {start} is after the cohort's window ({rules.window.end})",
            key="window",
        )
    beside = ThreadPoolExecutor(1, thread_name_prefix="plan-beside")
    try:
        # Work that needs only what is made before it runs beside what comes next: the
        # extracts' hashes beside the read (hashlib lets go of the GIL), the payload's device
        # columns made whole beside validation, the excluded entries beside the ordering and
        # the writing of the eligible ones (Arrow lets go of it too).
        if extract_records is None:
            extract_records = records_beside(extracts)
        ingested = ingest(extracts, MAPPINGS.load_file(mapping_path))
        records = extract_records.result()
        devices = beside.submit(
            pa.Table.combine_chunks, ingested.devices.select(list(OWN_DEVICE_FIELDS))
        )
        validation = validate(
            ingested.installations,
            ingested.devices,
            rules,
            as_of=start,
            links=ingested.device_links,
        )
        excluded = beside.submit(lambda: json_text.lines(_excluded_json(validation)))
        eligible, timetable = _eligible_set(validation, devices.result(), rules, start)
    finally:
        # The excluded entries are written after the eligible ones: they are asked for then,
        # and their thread ends once they are made.
        beside.shutdown(wait=False)
    quarantine = _quarantine_json(ingested)
    ingest_summary = ingested.summary.as_dict()
    del ingested  # only what the plan's text is made of is needed now
    count = validation.installations.num_rows
    summary = PlanSummary(
        cohort=rules.name,
        installations=count,
        eligible=eligible.installations.num_rows,
        excluded=count - eligible.installations.num_rows,
        excluded_by_reason=validation.excluded_by_reason(),
        days=int(timetable["days"]),
        finish=str(timetable["finish"]),
        window_end=str(timetable["window_end"]),
        fits_window=bool(timetable["fits_window"]),
    )
    device_count = int(pc.sum(eligible.installations.column("devices")).as_py() or 0)
    ingest_summary.pop("files")
    head: dict[str, object] = {
        "plan_version": PLAN_VERSION,
        "tool": {"name": "smets1-migrate", "version": __version__},
        "cohort": {"name": rules.name, **COHORTS.record(cohort_path)},
        "mapping": {"name": mapping_path.stem, **MAPPINGS.record(mapping_path)},
        "extracts": records,
        "as_of": start.isoformat(),
        "device_fields": list(DEVICE_FIELDS),
        "ingest": ingest_summary,
        "summary": {**summary.as_dict(), "eligible_devices": device_count},
        "schedule": timetable,
    }

    def chunks() -> Iterator[bytes | pa.Buffer]:
        pool = ThreadPoolExecutor(PIECE_THREADS, thread_name_prefix="plan")
        try:
            yield from json_text.document_chunks(
                head,
                {
                    "eligible": _entries_in_order(eligible, pool),
                    "excluded": _when_made(excluded),
                    "quarantine": quarantine,
                },
            )
        finally:  # a write that fails stops the pieces not yet begun
            pool.shutdown(cancel_futures=True)

    return Plan(summary, chunks)


class _InputRecord(TypedDict):
    path: str
    bytes: int
    sha256: str


class _NamedInputRecord(_InputRecord):
    name: str


class _Tool(TypedDict):
    name: str
    version: str


class _Schedule(TypedDict):
    by_supplier: NotRequired[list[dict[str, Any]]]


class _Summary(TypedDict):
    excluded_by_reason: NotRequired[dict[str, int]]


class _ExcludedEntry(TypedDict):
    reasons: NotRequired[list[str]]
    findings: NotRequired[list[dict[str, Any]]]
    models: NotRequired[str | None]


class _PlanDocument(TypedDict):
    """The parts of a plan that a report reads, each of the type the plan writes it as. A
    plan that lacks one, or holds another type there, is refused by name rather than
    half-rendered: a report made from it would be read as the plan's."""

    tool: _Tool
    cohort: _NamedInputRecord
    mapping: _NamedInputRecord
    extracts: list[_InputRecord]
    as_of: str
    ingest: dict[str, Any]
    summary: _Summary
    schedule: _Schedule
    eligible: list[Any]  # hundreds of thousands: checked by `_misshapen_eligible`, 25x faster
    excluded: list[_ExcludedEntry]
    quarantine: list[dict[str, Any]]


@cache
def _plan_document() -> TypeAdapter[_PlanDocument]:
    """Built when a plan is first read, not when `migrate plan` imports this module."""
    return TypeAdapter(_PlanDocument)


def load_plan(path: Path) -> dict[str, object]:
    """A plan file, checked to be one this version can read, with every part a report reads
    present and of its type."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(path, f"not a readable plan: {error}") from None
    if not isinstance(document, dict) or document.get("plan_version") != PLAN_VERSION:
        raise ConfigError(path, f"not a plan of version {PLAN_VERSION}", key="plan_version")
    try:
        _plan_document().validate_python(document, strict=True)
    except ValidationError as error:
        key, problem = validation_problem(error)
        raise ConfigError(path, f"not a whole plan: {problem}", key=key) from None
    misshapen = _misshapen_eligible(document["eligible"])
    if misshapen is not None:
        raise ConfigError(
            path,
            "not a whole plan: an eligible entry must be an object, its payload an object and "
            "its models a string",
            key=f"eligible.{misshapen}",
        )
    return document


def _misshapen_eligible(entries: list[Any]) -> int | None:
    """The first eligible entry not of the shape the plan writes, if any."""
    for index, entry in enumerate(entries):
        if (
            type(entry) is not dict
            or type(entry.get("payload", {})) is not dict
            or type(entry.get("models")) not in (str, type(None))
        ):
            return index
    return None
