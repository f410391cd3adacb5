"""Stage a plan: its eligible installations become STAGED requests in the store, all or none.

Idempotent: staging the same plan again inserts nothing and says so. A request key already in
the store with another payload fingerprint is refused, naming the installations, since the
same key must always mean the same request. A new key for an installation that still has a
live request under its old key (its devices or firmware changed) is refused too: both would be
sent. A plan whose input files have changed since it was made is refused, as terraform refuses
a stale plan. A plan with no eligible installations stages nothing and makes no batch.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, String, insert, select

from migrate import json_text
from migrate.cohort.loader import COHORTS
from migrate.config_files import recorded_file
from migrate.errors import InputError, TerminalError
from migrate.input_records import file_digest
from migrate.plan import (
    PAYLOAD_FIELDS,
    device_lists_json,
    payload_json,
    sha256_each,
)
from migrate.plan_reader import read_eligible
from migrate.store import audit_log
from migrate.store.bulk import insert_new, rows_where_in
from migrate.store.engine import require_current
from migrate.store.schema import batches, metadata, require_name
from migrate.store.states import RequestState, check_transition

# What staging reads of the other requests of the installations it stages, by installation.
LIVE_COLUMNS = ["installation_id", "idempotency_key", "batch", "state"]


def _listed(items: list[str]) -> str:
    """The first ten items, and `...` for more: a message about 100,000 stays readable."""
    return ", ".join(items[:10]) + (" ..." if len(items) > 10 else "")


class StalePlan(TerminalError):
    """The plan's inputs changed since it was made: plan again before staging."""


class FingerprintConflict(TerminalError):
    """A key in the store names another payload: the same key must mean the same request."""

    def __init__(self, installations: list[str]) -> None:
        self.installations = installations
        super().__init__(
            f"{len(installations)} request key(s) are already staged with another payload "
            f"fingerprint: {_listed(installations)}. The store keeps the first: find out which "
            "payload is right before staging these installations again."
        )


class LiveRequestConflict(TerminalError):
    """An installation to stage already has a request under another key (its devices or
    firmware changed) that is not WITHDRAWN: staging both would enrol it twice."""

    def __init__(self, conflicts: list[tuple[str, str, str]]) -> None:
        # (installation, batch, state) of each old request, sorted.
        self.conflicts = conflicts
        by_installation: dict[str, list[str]] = {}
        for installation, batch, state in conflicts:
            by_installation.setdefault(installation, []).append(f"{batch}, {state}")
        self.installations = list(by_installation)
        shown = _listed([f"{name} ({'; '.join(held)})" for name, held in by_installation.items()])
        states = {state for _, _, state in conflicts}
        advice = [
            f"{len(by_installation)} installation(s) already have a request that is not "
            f"WITHDRAWN under another request key (their devices or firmware changed): {shown}. "
            "Committing both would enrol each twice, so nothing was staged. If the new device "
            "set is the right one, withdraw the old request (`migrate withdraw --batch BATCH "
            "--installation ID`, one --installation per installation), then stage again."
        ]
        if RequestState.FAILED.value in states:
            advice.append(
                "A FAILED request cannot be withdrawn as it is: while no commit of its batch "
                "runs, put it back with `migrate requeue --batch BATCH --installation ID`, then "
                "withdraw it."
            )
        if states & {RequestState.SUBMITTING.value, RequestState.ACCEPTED.value}:
            advice.append(
                "A SUBMITTING or ACCEPTED request is with the DCC and cannot be withdrawn: wait "
                "for its outcome."
            )
        if RequestState.MIGRATED.value in states:
            advice.append(
                "A MIGRATED installation is already enrolled and cannot be withdrawn: leave it "
                "out of the plan (fix the inputs, plan again) and take the device change up with "
                "the DCC."
            )
        super().__init__(" ".join(advice))


@dataclass(frozen=True)
class StageResult:
    batch: str
    cohort: str
    requests: int  # in the plan
    staged: int  # new in the store now
    already: int  # were staged before, unchanged
    devices: int
    audit_head: int


def _head(path: Path) -> dict[str, Any]:
    """The plan's head (everything before its lists), read without parsing the lists."""
    fields: dict[str, Any] = {}
    if not path.is_file():
        raise InputError(path, "no such plan file" if not path.exists() else "not a plan file")
    with path.open("rb") as handle:
        first = handle.readline()
        if first.strip() != b"{":
            raise InputError(path, "not a plan: it does not start with a JSON object")
        for line in handle:
            if line.rstrip().endswith(b"["):
                break
            key, _, value = line.decode("utf-8").partition(": ")
            try:
                fields[json.loads(key)] = json.loads(value.rstrip().rstrip(","))
            except json.JSONDecodeError:
                raise InputError(
                    path, "not laid out as `migrate plan` writes plans (one key a line)"
                ) from None
    if fields.get("plan_version") != 1:
        raise InputError(path, "not a plan of version 1")
    return fields


def check_inputs(plan: dict[str, Any], plan_path: Path) -> None:
    """Every input the plan was made from, unchanged: same bytes, same SHA-256."""
    changed, missing = [], []
    for record in [plan["cohort"], plan["mapping"], *plan["extracts"]]:
        path = recorded_file(record["path"])
        if not path.is_file():
            missing.append(path)
        elif file_digest(path) != record["sha256"]:
            changed.append(f"{path} (changed)")
    if missing:
        # Most often the plan was made in another folder: its paths are relative to that one.
        hint = (
            f" A plan's relative paths are from the folder it was made in, not from here "
            f"({Path.cwd()}): run `migrate stage` from that folder."
            if any(not path.is_absolute() for path in missing)
            else ""
        )
        raise StalePlan(
            f"{plan_path}: cannot find the plan's input(s) "
            f"{', '.join(f'{path} (missing)' for path in missing)}.{hint} If a file was moved "
            "or deleted, make a new plan from the files as they are now."
        )
    if changed:
        raise StalePlan(
            f"{plan_path}: the plan's inputs changed since it was made: {', '.join(changed)}; "
            "make a new plan"
        )


def _input_hashes(plan: dict[str, Any]) -> dict[str, str]:
    return {r["path"]: r["sha256"] for r in [plan["cohort"], plan["mapping"], *plan["extracts"]]}


def _existing(connection: Connection, keys: list[str]) -> dict[str, tuple[str, str]]:
    """Keys of these requests already in the store, with their fingerprints and batches."""
    found = rows_where_in(
        connection, "requests", ["idempotency_key", "fingerprint", "batch"], "idempotency_key", keys
    )
    return {key: (fingerprint, held_in) for key, fingerprint, held_in in found}


def _live_elsewhere(connection: Connection, fresh: pa.Table) -> list[tuple[str, str, str]]:
    """(installation, batch, state) of every request of the fresh requests' installations
    held under another key and not WITHDRAWN: a second live request for one installation.
    By installation id, a chunk per query, through the requests_installation index."""
    ids = fresh.column("installation_id").to_pylist()
    fresh_keys = dict(zip(ids, fresh.column("idempotency_key").to_pylist(), strict=True))
    found = rows_where_in(connection, "requests", LIVE_COLUMNS, "installation_id", ids)
    return sorted(
        (installation, batch, state)
        for installation, request_key, batch, state in found
        if state != RequestState.WITHDRAWN.value and request_key != fresh_keys[installation]
    )


def _refuse_repeats(ids: pa.Array, plan_path: Path) -> None:
    """A plan lists each eligible installation once; one listed twice (an edited or joined
    plan) would be a second request for it, and the store's keys would refuse it mid-write."""
    counts = pc.value_counts(ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1)).to_pylist()
    if repeated:
        raise InputError(
            plan_path,
            f"lists {len(repeated)} eligible installation(s) more than once: "
            f"{_listed(sorted(repeated))}. `migrate plan` lists each once, so the plan was "
            "edited or joined after it was made: make it again",
        )


# How a value too long for its column is told, in the message and when reading it back.
_LONGER = "longer than"


def _refuse_unkeepable(rows: dict[str, pa.Table], plan_path: Path) -> None:
    """Values the store cannot keep as they are (rows by table name): longer than their
    columns hold, or holding a NUL character, which PostgreSQL's text cannot. Refused before
    anything is written, naming each field and the first installations: PostgreSQL refused
    them mid-write (an internal error) where SQLite kept them whole. Lengths are counted in
    characters, as PostgreSQL counts them."""
    found: dict[str, pa.Array] = {}  # the problem, field first: the installations concerned
    for name, values in rows.items():
        for column in metadata.tables[name].columns:
            if not isinstance(column.type, String) or column.name not in values.schema.names:
                continue
            text = values.column(column.name)
            problems = [(f"{column.name} with a NUL character", pc.match_substring(text, "\x00"))]
            if column.type.length:
                too_long = pc.greater(pc.utf8_length(text), column.type.length)
                problems.append(
                    (f"{column.name} {_LONGER} {column.type.length:,} characters", too_long)
                )
            for problem, hit in problems:
                hit = pc.fill_null(hit, False)
                if problem not in found and pc.any(hit).as_py():
                    found[problem] = pc.unique(values.column("installation_id").filter(hit))
    if found:
        parts = [
            f"{problem} in {len(ids):,} installation(s): "
            + _listed([_shortened(i) for i in ids.slice(0, 11).to_pylist()])
            for problem, ids in found.items()
        ]
        only_lengths = all(f" {_LONGER} " in problem for problem in found)
        kind = f"{_LONGER} the store keeps" if only_lengths else "the store cannot keep"
        raise InputError(
            plan_path,
            f"holds values {kind}: {'; '.join(parts)}. Nothing was staged: correct them in the "
            "extract, then plan again",
        )


def _shortened(text: str) -> str:
    """An installation id as a message shows it: an overlong one cut to its first 40
    characters, so that ten of them stay readable."""
    return text if len(text) <= 40 else text[:40] + "…"


def _payloads(
    entries: pa.Table, plan: dict[str, Any], plan_path: Path, owner: np.ndarray, flat: pa.Array
) -> pa.Array:
    """Each payload rebuilt by the plan's own JSON writer, checked against its fingerprint:
    what is staged (and later sent) is byte for byte what the plan showed."""
    payload = entries.column("payload").combine_chunks()
    lists = device_lists_json(
        [
            json_text.Text(pc.list_element(flat, index))
            for index in range(len(plan["device_fields"]))
        ],
        owner,
        entries.num_rows,
    )
    fields = {name: pc.struct_field(payload, name) for name in PAYLOAD_FIELDS}
    fields["combination"] = pc.struct_field(payload, "combination")
    texts = payload_json(plan["cohort"]["name"], fields, lists)
    altered = pc.not_equal(sha256_each(texts), entries.column("fingerprint").combine_chunks())
    if pc.any(altered).as_py():
        names = pc.struct_field(payload, "installation_id").filter(altered).to_pylist()
        raise InputError(
            plan_path,
            f"{len(names)} payload(s) do not match their fingerprints (the plan was altered "
            f"after it was made): {', '.join(names[:10])}",
        )
    return texts


def _tables(
    entries: pa.Table, plan: dict[str, Any], plan_path: Path, batch: str, at: dt.datetime
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The entries as the rows of installations, devices and requests, column by column."""
    n = entries.num_rows
    payload = entries.column("payload").combine_chunks()

    def field(name: str) -> pa.Array:
        return pc.struct_field(payload, name)

    batch_column = pa.repeat(pa.scalar(batch), n)
    planned = pc.strptime(entries.column("date"), format="%Y-%m-%d", unit="s").cast(pa.date32())
    installations = pa.table(
        {
            "batch": batch_column,
            "installation_id": field("installation_id"),
            "supplier_mpid": field("supplier_mpid"),
            "smso": field("smso"),
            "mode": field("mode"),
            "mpan_core": field("mpan_core"),
            "mprn": field("mprn"),
            "combination": field("combination"),
            "planned_date": planned,
        }
    )
    device_lists = field("devices")
    per = pc.list_value_length(device_lists).to_numpy(zero_copy_only=False)
    owner = np.repeat(np.arange(n), per)
    flat = pc.list_flatten(device_lists)
    fields = plan["device_fields"]
    payloads = _payloads(entries, plan, plan_path, owner, flat)
    devices = pa.table(
        {
            "batch": pa.repeat(pa.scalar(batch), len(flat)),
            "installation_id": field("installation_id").take(pa.array(owner)),
            **{name: pc.list_element(flat, index) for index, name in enumerate(fields)},
        }
    )
    requests_table = pa.table(
        {
            "idempotency_key": entries.column("idempotency_key"),
            "fingerprint": entries.column("fingerprint"),
            "batch": batch_column,
            "cohort": pa.repeat(pa.scalar(plan["cohort"]["name"]), n),
            "installation_id": field("installation_id"),
            "supplier_mpid": field("supplier_mpid"),
            "state": pa.repeat(pa.scalar(RequestState.STAGED.value), n),
            "reason": pa.nulls(n, pa.string()),
            "attempts": pa.repeat(pa.scalar(0, pa.int32()), n),
            "planned_date": planned,
            "payload": payloads,
            "updated_at": pa.repeat(pa.scalar(at, pa.timestamp("us", tz="UTC")), n),
        }
    )
    return installations, devices, requests_table


def stage(
    engine: Engine,
    plan_path: Path,
    *,
    batch: str | None = None,
    actor: str,
    key: bytes | None,
) -> StageResult:
    """Turn a plan into a batch of STAGED requests, audited, in one transaction."""
    require_current(engine)
    plan = _head(plan_path)
    check_inputs(plan, plan_path)
    # The cohort file as the plan was made with it (its bytes were just checked): the batch
    # keeps its limits, so that later edits to the file do not change a planned batch.
    rules = COHORTS.load_file(recorded_file(plan["cohort"]["path"]))
    plan_sha = file_digest(plan_path)
    cohort = plan["cohort"]["name"]
    batch = require_name(batch or f"{cohort}-{plan_sha[:12]}", "batch")
    at = dt.datetime.now(dt.UTC)
    entries = read_eligible(plan_path)
    inputs = {"plan": plan_sha}
    check_transition(None, RequestState.STAGED)
    keys = entries.column("idempotency_key").to_pylist()
    ids = pc.struct_field(entries.column("payload").combine_chunks(), "installation_id")
    _refuse_repeats(ids, plan_path)
    with engine.begin() as connection:
        audit_log.require_matching_key(connection, key)
        # Taking the audit head first serialises stagers: the second sees the first's rows.
        audit_log.append(connection, [], actor=actor, command="stage", inputs=inputs, key=key)
        known = connection.execute(
            select(batches.c.plan_sha256).where(batches.c.name == batch)
        ).first()
        if known is not None and known.plan_sha256 != plan_sha:
            raise InputError(
                plan_path,
                f"batch {batch!r} already holds another plan ({known.plan_sha256[:12]})",
            )
        existing = _existing(connection, keys)
        fingerprints = entries.column("fingerprint").to_pylist()
        clashes = sorted(
            ids[i].as_py()
            for i, k in enumerate(keys)
            if k in existing and existing[k][0] != fingerprints[i]
        )
        if clashes:
            raise FingerprintConflict(clashes)
        if known is None and existing and len(existing) == len(keys):
            elsewhere = sorted({held_in for _, held_in in existing.values()})
            raise InputError(
                plan_path,
                f"every request of this plan is already staged, in batch(es) "
                f"{', '.join(elsewhere)}: a second batch {batch!r} would hold nothing",
            )
        # Only what is new is built (and its payload checked): re-staging builds nothing.
        new = entries.filter(pa.array([k not in existing for k in keys], pa.bool_()))
        installations, devices, fresh = _tables(new, plan, plan_path, batch, at)
        _refuse_unkeepable(
            {"installations": installations, "devices": devices, "requests": fresh}, plan_path
        )
        live = _live_elsewhere(connection, fresh)
        if live:
            raise LiveRequestConflict(live)
        # A plan with no eligible installation makes no batch: it would hold nothing, with no
        # audit record, yet keep its name from the next plan staged under it.
        if known is None and entries.num_rows:
            connection.execute(
                insert(batches).values(
                    name=batch,
                    cohort=cohort,
                    plan_sha256=plan_sha,
                    plan_path=str(plan_path),
                    inputs=json.dumps(_input_hashes(plan), sort_keys=True),
                    created_at=at,
                    created_by=actor,
                    capacity_per_day=rules.capacity_per_supplier_per_day,
                    max_attempts=rules.max_attempts,
                )
            )
        insert_new(connection, "installations", installations, ["batch", "installation_id"])
        insert_new(connection, "devices", devices, ["batch", "installation_id", "device_id"])
        insert_new(connection, "requests", fresh, ["idempotency_key"])
        head = audit_log.append_columns(
            connection,
            pa.table(
                {
                    "batch": fresh.column("batch"),
                    "installation_id": fresh.column("installation_id"),
                    "idempotency_key": fresh.column("idempotency_key"),
                    "to_state": fresh.column("state"),
                }
            ),
            actor=actor,
            command="stage",
            inputs=inputs,
            key=key,
        )
    return StageResult(
        batch=batch,
        cohort=cohort,
        requests=entries.num_rows,
        staged=fresh.num_rows,
        already=entries.num_rows - fresh.num_rows,
        devices=devices.num_rows,
        audit_head=head,
    )
