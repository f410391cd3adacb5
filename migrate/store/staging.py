"""Stage a plan: its eligible installations become STAGED requests in the store, all or none.

Idempotent: staging the same plan again inserts nothing and says so. A request key already in
the store with another payload fingerprint is refused, naming the installations, since the
same key must always mean the same request. A plan whose input files have changed since it
was made is refused, as terraform refuses a stale plan.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from migrate.errors import InputError, TerminalError
from migrate.plan import file_digest, load_plan
from migrate.store import audit_log
from migrate.store.engine import require_current
from migrate.store.schema import batches, requests
from migrate.store.states import RequestState, check_transition

INSTALLATION_COLUMNS = (
    "batch",
    "installation_id",
    "supplier_mpid",
    "smso",
    "mode",
    "mpan_core",
    "mprn",
    "combination",
    "planned_date",
)
DEVICE_COLUMNS = (
    "batch",
    "installation_id",
    "device_id",
    "device_type",
    "manufacturer",
    "model",
    "firmware_version",
    "msn",
    "mpxn",
)
REQUEST_COLUMNS = (
    "idempotency_key",
    "fingerprint",
    "batch",
    "cohort",
    "installation_id",
    "supplier_mpid",
    "state",
    "reason",
    "attempts",
    "planned_date",
    "payload",
    "updated_at",
)
# Rows per executemany call: bounds the memory of one statement's parameters.
CHUNK = 50_000


class StalePlan(TerminalError):
    """The plan's inputs changed since it was made: plan again before staging."""


class FingerprintConflict(TerminalError):
    """A key in the store names another payload: the same key must mean the same request."""

    def __init__(self, installations: list[str]) -> None:
        self.installations = installations
        shown = ", ".join(installations[:10]) + (" ..." if len(installations) > 10 else "")
        super().__init__(
            f"{len(installations)} request key(s) are already staged with another payload "
            f"fingerprint: {shown}. The store keeps the first; withdraw it or plan again."
        )


@dataclass(frozen=True)
class StageResult:
    batch: str
    cohort: str
    requests: int  # in the plan
    staged: int  # new in the store now
    already: int  # were staged before, unchanged
    devices: int
    audit_head: int


def check_inputs(plan: dict[str, Any], plan_path: Path) -> None:
    """Every input the plan was made from, unchanged: same bytes, same SHA-256."""
    records = [plan["cohort"], plan["mapping"], *plan["extracts"]]
    changed = []
    for record in records:
        path = Path(record["path"])
        if not path.is_file():
            changed.append(f"{path} (missing)")
        elif file_digest(path) != record["sha256"]:
            changed.append(f"{path} (changed)")
    if changed:
        raise StalePlan(
            f"{plan_path}: the plan's inputs changed since it was made: {', '.join(changed)}; "
            "make a new plan"
        )


def _rows(plan: dict[str, Any], batch: str, at: dt.datetime) -> tuple[list, list, list]:
    """The plan's eligible entries as rows for installations, devices and requests."""
    fields = plan["device_fields"]
    cohort = plan["cohort"]["name"]
    state = RequestState.STAGED.value
    installation_rows, device_rows, request_rows = [], [], []
    for entry in plan["eligible"]:
        payload = entry["payload"]
        planned = dt.date.fromisoformat(entry["date"])
        installation = payload["installation_id"]
        installation_rows.append(
            (
                batch,
                installation,
                payload["supplier_mpid"],
                payload["smso"],
                payload["mode"],
                payload["mpan_core"],
                payload["mprn"],
                payload["combination"],
                planned,
            )
        )
        for device in payload["devices"]:
            values = dict(zip(fields, device, strict=True))
            device_rows.append((batch, installation, *(values[c] for c in DEVICE_COLUMNS[2:])))
        request_rows.append(
            (
                entry["idempotency_key"],
                entry["fingerprint"],
                batch,
                cohort,
                installation,
                payload["supplier_mpid"],
                state,
                None,
                0,
                planned,
                json.dumps(payload, sort_keys=True, separators=(",", ":")),
                at,
            )
        )
    return installation_rows, device_rows, request_rows


def _input_hashes(plan: dict[str, Any]) -> dict[str, str]:
    return {r["path"]: r["sha256"] for r in [plan["cohort"], plan["mapping"], *plan["extracts"]]}


def _chunks(rows: Sequence[tuple], size: int = CHUNK) -> Iterator[Sequence[tuple]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _existing(connection: Connection, rows: list[tuple]) -> dict[str, str]:
    """Keys of these requests already in the store, with their fingerprints."""
    found: dict[str, str] = {}
    keys = [row[0] for row in rows]
    for start in range(0, len(keys), 5_000):
        part = keys[start : start + 5_000]
        query = select(requests.c.idempotency_key, requests.c.fingerprint).where(
            requests.c.idempotency_key.in_(part)
        )
        found.update({key: fingerprint for key, fingerprint in connection.execute(query)})
    return found


def _insert(connection: Connection, table_name: str, columns: Sequence[str], rows: list) -> None:
    """Bulk insert that skips rows already there: SQLite executemany in the open
    transaction; PostgreSQL COPY into a temporary table, then one INSERT ... ON CONFLICT."""
    if not rows:
        return
    names = ", ".join(columns)
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        scratch = f"staging_{table_name}"
        with raw.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {scratch} "
                f"(LIKE {table_name} INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            cursor.execute(f"TRUNCATE {scratch}")
            with cursor.copy(f"COPY {scratch} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO {table_name} ({names}) SELECT {names} FROM {scratch} "
                f"ORDER BY 1 ON CONFLICT DO NOTHING"
            )
        return
    marks = ", ".join("?" for _ in columns)
    statement = f"INSERT INTO {table_name} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    for part in _chunks(rows):
        connection.exec_driver_sql(statement, list(part))


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
    plan = load_plan(plan_path)
    check_inputs(plan, plan_path)
    plan_sha = file_digest(plan_path)
    cohort = plan["cohort"]["name"]
    batch = batch or f"{cohort}-{plan_sha[:12]}"
    at = dt.datetime.now(dt.UTC)
    installation_rows, device_rows, request_rows = _rows(plan, batch, at)
    inputs = {"plan": plan_sha}
    check_transition(None, RequestState.STAGED)
    with engine.begin() as connection:
        # Taking the audit head first serialises stagers: the second sees the first's rows.
        audit_log.append(connection, [], actor=actor, command="stage", inputs=inputs, key=key)
        known = connection.execute(
            select(batches.c.plan_sha256).where(batches.c.name == batch)
        ).first()
        if known is not None and known.plan_sha256 != plan_sha:
            raise InputError(
                plan_path, f"batch {batch!r} already holds another plan ({known.plan_sha256[:12]})"
            )
        existing = _existing(connection, request_rows)
        clashes = sorted(
            row[4] for row in request_rows if row[0] in existing and existing[row[0]] != row[1]
        )
        if clashes:
            raise FingerprintConflict(clashes)
        if known is None:
            connection.execute(
                insert(batches).values(
                    name=batch,
                    cohort=cohort,
                    plan_sha256=plan_sha,
                    plan_path=str(plan_path),
                    inputs=json.dumps(_input_hashes(plan), sort_keys=True),
                    created_at=at,
                    created_by=actor,
                )
            )
        new = [row for row in request_rows if row[0] not in existing]
        fresh = {row[4] for row in new}
        _insert(
            connection,
            "installations",
            INSTALLATION_COLUMNS,
            [row for row in installation_rows if row[1] in fresh],
        )
        _insert(
            connection, "devices", DEVICE_COLUMNS, [row for row in device_rows if row[1] in fresh]
        )
        _insert(connection, "requests", REQUEST_COLUMNS, new)
        head = audit_log.append(
            connection,
            [
                {
                    "batch": batch,
                    "installation_id": row[4],
                    "idempotency_key": row[0],
                    "from_state": None,
                    "to_state": RequestState.STAGED.value,
                    "reason": None,
                }
                for row in new
            ],
            actor=actor,
            command="stage",
            inputs=inputs,
            key=key,
        )
    return StageResult(
        batch=batch,
        cohort=cohort,
        requests=len(request_rows),
        staged=len(new),
        already=len(request_rows) - len(new),
        devices=sum(1 for row in device_rows if row[1] in fresh),
        audit_head=head,
    )
