"""The audit log in the store: records appended in the caller's transaction, chained to the
head kept in audit_head, which is locked while a writer appends so that two workers cannot
both extend the chain from the same record."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections.abc import Iterator, Mapping, Sequence

import pyarrow as pa
from sqlalchemy import Connection, func, select, update

from migrate.audit import (
    AuditRecord,
    Verification,
    inputs_text,
    inputs_value,
    seal_many,
    sealed_with,
    valid_head,
    verify,
)
from migrate.audit.columnar import PER_ROW, seal_columns
from migrate.errors import ConfigError
from migrate.store.bulk import execute_many, insert_new
from migrate.store.schema import audit, audit_head, require_name

HEAD_ROW = 1
_TYPES = {
    column.name: pa.int64() if column.name == "seq" else pa.string() for column in audit.columns
}
FETCH_ROWS = 10_000
# Appends up to this many records go to the driver's executemany, bigger ones in bulk.
SMALL_APPEND = 5_000


def default_actor() -> str:
    """The operating-system user, when no --actor is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def actor_name(actor: str | None) -> str:
    """Who the records name: --actor, else the OS user; checked before anything is written."""
    return require_name(actor or default_actor(), "actor")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lock_head(connection: Connection) -> tuple[int, str]:
    """The head, locked for this transaction (PostgreSQL: the row; SQLite: the database,
    which a writing transaction holds anyway)."""
    query = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ROW)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    found = connection.execute(query).first()
    if found is None:
        raise ConfigError(
            None,
            "the store has no audit head row: was it created by `migrate db upgrade`?",
            key="db",
        )
    return int(found.seq), str(found.hash)


def append(
    connection: Connection,
    events: Sequence[Mapping[str, object]],
    *,
    actor: str,
    command: str,
    inputs: Mapping[str, str],
    key: bytes | None,
) -> int:
    """Append one record per event (batch, installation_id, idempotency_key, from_state,
    to_state, reason), sealed and chained, in the caller's transaction. Returns the new
    head's sequence number."""
    if not events:
        return _lock_head(connection)[0]
    seq, prev_hash = _lock_head(connection)
    at = now()
    rows = [
        {
            "seq": seq + offset,
            "at": at,
            "actor": actor,
            "command": command,
            "batch": event.get("batch"),
            "installation_id": event.get("installation_id"),
            "idempotency_key": event.get("idempotency_key"),
            "from_state": event.get("from_state"),
            "to_state": event.get("to_state"),
            "reason": event.get("reason"),
            "inputs": dict(inputs),
        }
        for offset, event in enumerate(events, start=1)
    ]
    sealed = seal_many(rows, prev_hash, key)
    # Every record of one append shares its inputs: written once, referenced by each row.
    shared = inputs_text(inputs)
    columns = [column.name for column in audit.columns]
    if len(sealed) <= SMALL_APPEND:
        # A commit's chunk: tuples straight to the driver beat building an Arrow table.
        fields = [vars(record) for record in sealed]
        execute_many(
            connection,
            f"INSERT INTO audit ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            [tuple(shared if name == "inputs" else f[name] for name in columns) for f in fields],
        )
    else:
        values = {name: [getattr(record, name) for record in sealed] for name in columns}
        values["inputs"] = [shared] * len(sealed)
        insert_new(
            connection,
            "audit",
            pa.table({name: pa.array(values[name], _TYPES[name]) for name in columns}),
            ["seq"],
        )
    head = sealed[-1]
    connection.execute(
        update(audit_head).where(audit_head.c.id == HEAD_ROW).values(seq=head.seq, hash=head.hash)
    )
    return head.seq


def append_columns(
    connection: Connection,
    events: pa.Table,
    *,
    actor: str,
    command: str,
    inputs: Mapping[str, str],
    key: bytes | None,
) -> int:
    """`append` for events given as columns (those of PER_ROW; a missing one is null
    throughout): sealed and written column by column, for appends of hundreds of thousands.
    Returns the new head's sequence number."""
    seq, prev_hash = _lock_head(connection)
    count = events.num_rows
    if count == 0:
        return seq
    columns = {
        name: events.column(name).combine_chunks()
        if name in events.column_names
        else pa.nulls(count, pa.string())
        for name in PER_ROW
    }
    at = now()
    shared = {"at": at, "actor": actor, "command": command, "inputs": dict(inputs)}
    sealed = seal_columns(seq + 1, prev_hash, key, shared, columns)
    rows = pa.table(
        {
            "seq": pa.array(range(seq + 1, seq + 1 + count), pa.int64()),
            "at": pa.repeat(pa.scalar(at), count),
            "actor": pa.repeat(pa.scalar(actor), count),
            "command": pa.repeat(pa.scalar(command), count),
            **{name: columns[name].cast(pa.string()) for name in PER_ROW},
            "inputs": pa.repeat(pa.scalar(inputs_text(inputs)), count),
            "prev_hash": pa.array(sealed.prev_hashes, pa.string()),
            "hash": pa.array(sealed.hashes, pa.string()),
            "mac": pa.array(sealed.macs, pa.string()),
        }
    )
    insert_new(connection, "audit", rows.select([column.name for column in audit.columns]), ["seq"])
    connection.execute(
        update(audit_head)
        .where(audit_head.c.id == HEAD_ROW)
        .values(seq=seq + count, hash=sealed.hashes[-1])
    )
    return seq + count


def require_matching_key(connection: Connection, key: bytes | None) -> None:
    """Refuse to extend a keyed log without the key (or an unkeyed one with a key): the new
    records would fail verification as if someone had tampered with them."""
    found = head(connection)
    if found is None or found[0] == 0:
        return
    row = connection.execute(select(audit).where(audit.c.seq == found[0])).first()
    if row is None:
        return  # a log cut short: `migrate audit verify` says so
    values = row._asdict()
    values["inputs"] = json.loads(values["inputs"])
    mac = values["mac"]
    if mac is not None and key is not None and not sealed_with(AuditRecord(**values), key):
        raise ConfigError(
            None,
            "MIGRATE_AUDIT_KEY is not the key this store's audit log is sealed with",
            key="MIGRATE_AUDIT_KEY",
        )
    if mac is not None and key is None:
        raise ConfigError(
            None,
            "this store's audit log is sealed with a key (HMAC): set MIGRATE_AUDIT_KEY to the "
            "same key before changing anything",
            key="MIGRATE_AUDIT_KEY",
        )
    if mac is None and key is not None:
        raise ConfigError(
            None,
            "this store's audit log is not keyed, but MIGRATE_AUDIT_KEY is set: unset it, or "
            "start a new store with the key",
            key="MIGRATE_AUDIT_KEY",
        )


def records(connection: Connection) -> Iterator[AuditRecord]:
    """Every record, in sequence order, streamed."""
    result = connection.execution_options(stream_results=True, yield_per=FETCH_ROWS).execute(
        select(audit).order_by(audit.c.seq)
    )
    for row in result:
        values = row._asdict()
        values["inputs"] = inputs_value(values["inputs"])  # the text, unless canonical
        yield AuditRecord(**values)


def head(connection: Connection) -> tuple[int, str] | None:
    found = connection.execute(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ROW)
    ).first()
    return None if found is None else (int(found.seq), str(found.hash))


def checked_head(connection: Connection) -> tuple[int, str] | Verification | None:
    """The head kept apart, for a verification; or the verdict, when the store holds
    records but no head (deleting it would hide a cut tail), or a head that is not one."""
    try:
        kept = head(connection)  # int() of the seq may fail too
        if kept is not None:
            return valid_head(kept)
    except ValueError as error:
        return Verification(False, 0, None, None, f"the audit head row is damaged: {error}")
    count = connection.execute(select(func.count()).select_from(audit)).scalar_one()
    if count:
        return Verification(
            False,
            0,
            None,
            None,
            f"the store holds {count:,} audit record(s) but no head row: the head was "
            "deleted, and without it a cut tail would not show",
        )
    return None


def verify_log(connection: Connection, key: bytes | None) -> Verification:
    """The whole log against its chain, its MACs (with a key) and the head kept apart."""
    kept = checked_head(connection)
    if isinstance(kept, Verification):
        return kept
    return verify(records(connection), key=key, expected_head=kept)
