"""The store's audit log verified in bulk: the verdict of `audit_log.verify_log` in seconds
where reading it record by record takes a minute at a million records.

A hundred thousand records at a time, the database itself writes each record's content as JSON
(json_quote on SQLite, to_json on PostgreSQL, both in C) and returns the chunk as a few long
texts: contents, hashes, prev_hashes and macs, one after another. The same query counts the
records whose fields `_prepare` would refuse, and the chunk's distinct `at` and inputs are
checked in Python; `migrate.audit.columnar` then recomputes every hash. Should any record not
be confirmed, `verify_log` reads the log again and names the first bad one.

On PostgreSQL the next chunks are read ahead, each on a connection of its own, while this
one is hashed: the server's work, most of the time, then runs on the other core. So the
caller's connection must not hold records it has not committed: they would not be seen on the
others (the log would then not be confirmed here, and `verify_log` would read it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sqlalchemy import Connection, Engine, Row, TextClause, func, select, text
from sqlalchemy.exc import DBAPIError

from migrate.audit import GENESIS, Verification
from migrate.audit.columnar import (
    Chunk,
    Unconfirmed,
    check_at,
    check_inputs,
    is_plain,
    verify_chunks,
)
from migrate.store.audit_log import checked_head, verify_log
from migrate.store.schema import audit

CHUNK_ROWS = 100_000
# Chunks read ahead, each on a connection of its own. On PostgreSQL the server builds their
# text on the other core while this process hashes: the log verifies in half the time. On
# SQLite that work is this process's own, and reading ahead was measured slower.
AHEAD = {"postgresql": 2}
AHEAD_CHUNK_ROWS = 50_000  # three in memory at once
_Read = tuple[list[Row], Row]
NO_MAC = "-" * 64  # stands for a missing mac: never equal to one computed


def _content(quote: str, number: str) -> str:
    """SQL for a record's canonical content, keys in `_prepare`'s order; `quote` turns a
    column into its JSON (null for NULL), `number` writes seq. Inputs go in as stored (they
    are checked to be stored canonically)."""
    fields = []
    for name in (
        "actor",
        "at",
        "batch",
        "command",
        "from_state",
        "idempotency_key",
        "inputs",
        "installation_id",
        "prev_hash",
        "reason",
        "seq",
        "to_state",
    ):
        value = {"inputs": "inputs", "seq": number.format("seq")}.get(name, quote.format(name))
        fields.append(f"'{',' if fields else '{'}\"{name}\":' || {value}")
    return " || ".join(fields) + " || '}'"


_BAD = (
    "actor IS NULL OR actor = '' OR command IS NULL OR command = '' "
    "OR length(hash) != 64 OR length(prev_hash) != 64 OR (mac IS NOT NULL AND length(mac) != 64)"
)
_CHUNK = {
    "sqlite": text(
        f"""
        SELECT count(*), min(seq), max(seq),
               sum({_BAD} OR typeof(seq) != 'integer'),
               group_concat(hash, ''), group_concat(prev_hash, ''),
               group_concat(ifnull(mac, :no_mac), ''), group_concat(content, char(30))
        FROM (SELECT *, {_content("json_quote({})", "{}")} AS content
              FROM audit WHERE seq >= :first AND seq < :stop ORDER BY seq)
        """
    ),
    "postgresql": text(
        f"""
        SELECT count(*), min(seq), max(seq),
               sum(CASE WHEN {_BAD} THEN 1 ELSE 0 END),
               string_agg(hash, '' ORDER BY seq), string_agg(prev_hash, '' ORDER BY seq),
               string_agg(coalesce(mac, :no_mac), '' ORDER BY seq),
               string_agg({_content("coalesce(to_json({})::text, 'null')", "{}::text")},
                          chr(30) ORDER BY seq)
        FROM audit WHERE seq >= :first AND seq < :stop
        """
    ),
}
_DISTINCT = text(
    "SELECT DISTINCT at, CAST(NULL AS TEXT) FROM audit WHERE seq >= :first AND seq < :stop "
    "UNION ALL "
    "SELECT DISTINCT CAST(NULL AS TEXT), inputs FROM audit WHERE seq >= :first AND seq < :stop"
)


def _rows(joined: str, n: int) -> np.ndarray:
    """n values of 64 characters, end to end, as rows of 64 bytes."""
    data = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
    if len(data) != 64 * n:
        raise Unconfirmed
    return data.reshape(n, 64)


def _read(connection: Connection, chunk: TextClause, start: int, size: int) -> _Read:
    """One chunk's distinct `at` and inputs, and its records as long texts."""
    bounds = {"first": start, "stop": start + size}
    pairs = list(connection.execute(_DISTINCT, bounds).all())
    return pairs, connection.execute(chunk, {**bounds, "no_mac": NO_MAC}).one()


def _read_apart(engine: Engine, chunk: TextClause, start: int, size: int) -> _Read:
    with engine.connect() as connection:
        return _read(connection, chunk, start, size)


def _read_ahead(
    engine: Engine, chunk: TextClause, starts: list[int], size: int, ahead: int
) -> Iterator[_Read]:
    """The chunks in order, each read on a connection of its own, `ahead` at a time.
    Records up to the last one counted never change (the log is append-only; a change is
    what verifying finds), so chunks read on other connections are of the same log."""
    with ThreadPoolExecutor(ahead, "audit-read") as pool:
        reads = deque(pool.submit(_read_apart, engine, chunk, s, size) for s in starts[:ahead])
        for index in range(len(starts)):
            done = reads.popleft().result()
            if index + ahead < len(starts):
                reads.append(pool.submit(_read_apart, engine, chunk, starts[index + ahead], size))
            yield done


def _chunks(
    connection: Connection, chunk: TextClause, first: int, last: int, with_macs: bool
) -> Iterator[Chunk]:
    ahead = AHEAD.get(connection.dialect.name, 0)
    size = AHEAD_CHUNK_ROWS if ahead else CHUNK_ROWS
    starts = list(range(first, last + 1, size))
    if ahead:
        reads = _read_ahead(connection.engine, chunk, starts, size, ahead)
    else:
        reads = (_read(connection, chunk, start, size) for start in starts)
    for start, (pairs, row) in zip(starts, reads, strict=True):
        check_at(at for at, _ in pairs if at is not None)
        check_inputs(inputs for _, inputs in pairs if inputs is not None)
        n, low, high, bad, hashes, previous, macs, content = row
        if not n:
            continue
        if bad or low != start or high != start + n - 1 or not is_plain(content):
            raise Unconfirmed
        data = content.encode("utf-8")
        del content, row
        # The records end to end without their separators (a content holds none: JSON
        # escapes control characters), each starting where the separators before it end.
        breaks = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x1E)
        ends = np.concatenate([breaks - np.arange(len(breaks)), [len(data) - len(breaks)]])
        yield Chunk(
            first_seq=low,
            content=data.replace(b"\x1e", b""),
            bounds=np.concatenate([[0], ends]),
            hashes=_rows(hashes, n),
            prev_hashes=_rows(previous, n),
            macs=_rows(macs, n) if with_macs else None,
        )


def verify_log_fast(
    connection: Connection, key: bytes | None, *, after: Verification | None = None
) -> Verification:
    """The whole log against its chain, its MACs (with a key) and the head kept apart, as
    `verify_log` checks it. `after`, a verification of this log made earlier (in this
    process: a good one, of records since unchanged), spares re-reading what it covered."""
    kept = checked_head(connection)
    if isinstance(kept, Verification):
        return kept
    count, last = connection.execute(select(func.count(), func.max(audit.c.seq))).one()
    start = (0, GENESIS)
    if after is not None and after.ok and after.head_hash is not None:
        start = (after.count, after.head_hash)
    chunk = _CHUNK.get(connection.dialect.name)
    if chunk is not None and count == (last or 0) and count >= start[0]:
        chunks = _chunks(connection, chunk, start[0] + 1, count, key is not None)
        try:
            verified = verify_chunks(chunks, key, kept, after=start)
        except (DBAPIError, UnicodeError):  # text the database cannot give as Unicode
            verified = None
        if verified is not None:
            return verified
    return verify_log(connection, key)


# Each request's last record. Plain SQL, the same on both databases: each joins this
# grouped table by key and the log by seq, a second or two at 400,000 requests and 1.6M
# records (SQLAlchemy's nested form of it was planned by SQLite as a scan per request).
_LAST = """
WITH last AS (
  SELECT idempotency_key, max(seq) AS seq FROM audit
  WHERE idempotency_key IS NOT NULL GROUP BY idempotency_key
)
"""
_DIFFERING = text(
    _LAST
    + """
SELECT r.idempotency_key, r.batch, r.installation_id, r.state,
       a.seq, a.batch AS recorded_batch, a.installation_id AS recorded_installation, a.to_state
FROM requests r
LEFT JOIN last l ON l.idempotency_key = r.idempotency_key
LEFT JOIN audit a ON a.seq = l.seq
WHERE a.seq IS NULL OR a.to_state <> r.state OR a.batch <> r.batch
   OR a.installation_id <> r.installation_id
ORDER BY a.seq LIMIT 1
"""
)
_UNLISTED = text(
    _LAST
    + """
SELECT l.idempotency_key, l.seq, a.installation_id
FROM last l
LEFT JOIN requests r ON r.idempotency_key = l.idempotency_key
JOIN audit a ON a.seq = l.seq
WHERE r.idempotency_key IS NULL
ORDER BY l.seq LIMIT 1
"""
)


def requests_against_log(connection: Connection, verified: Verification) -> Verification:
    """The requests table against the log it was written with: each request's state, batch
    and installation as its last record left them, and no request without records or
    records without their request. The log can hold while the table was edited beside it
    (a FAILED request set to MIGRATED, a request deleted); every change of a request's
    state is made with its record, so any difference is such an edit."""
    if not verified.ok:
        return verified
    differs = connection.execute(_DIFFERING).first()
    if differs is not None:
        if differs.seq is None:
            problem = (
                f"request {differs.idempotency_key[:12]} of installation "
                f"{differs.installation_id} is in the requests table with no record in the log"
            )
        else:
            problem = (
                f"request {differs.idempotency_key[:12]} is {differs.state} in batch "
                f"{differs.batch} for installation {differs.installation_id} in the requests "
                f"table, but its last record (seq {differs.seq}) left it {differs.to_state} in "
                f"batch {differs.recorded_batch} for installation "
                f"{differs.recorded_installation}"
            )
        return _edited_beside(verified, differs.seq, problem)
    unlisted = connection.execute(_UNLISTED).first()
    if unlisted is not None:
        problem = (
            f"request {unlisted.idempotency_key[:12]} of installation "
            f"{unlisted.installation_id} has records in the log (the last, seq {unlisted.seq}) "
            "but is missing from the requests table"
        )
        return _edited_beside(verified, unlisted.seq, problem)
    return verified


def _edited_beside(verified: Verification, seq: int | None, problem: str) -> Verification:
    return Verification(
        ok=False,
        count=verified.count,
        head_hash=verified.head_hash,
        first_bad_seq=seq,
        problem=f"the log holds, but the requests table was edited beside it: {problem}",
    )
