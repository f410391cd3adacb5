"""Moving requests between states in the store: the state change and its audit record in
the caller's transaction, or neither.

Every move names the state it expects the request to be in; a request found in another
state (a second worker got there first, or an operator withdrew it) refuses the whole set,
so that a transaction never half-applies a batch of moves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from migrate.errors import TerminalError
from migrate.store import audit_log
from migrate.store.bulk import driver_sql, driver_value, execute_many
from migrate.store.schema import requests
from migrate.store.states import IllegalTransition, RequestState, check_transition

LOOKUP = 5_000
STATES = {state.value: state for state in RequestState}


@dataclass(frozen=True)
class Move:
    """One request from `source` to `target`.

    `attempted` counts an attempt the DCC accepted towards the cohort's attempt limit, and
    `dcc_attempt` (if the DCC said) is its own number for it: the count is raised to it, since
    attempts the DCC decided while no run recorded them (a run killed meanwhile) count too;
    `sent` counts a send (a worker claiming the request to send it); `worker` is the commit
    worker holding the request afterwards (None: no one); `retryable` says, for a FAILED
    request, whether a later attempt may cure it.
    """

    idempotency_key: str
    batch: str
    installation_id: str
    source: RequestState
    target: RequestState
    reason: str | None = None
    attempted: bool = False
    dcc_attempt: int | None = None
    sent: bool = False
    worker: str | None = None
    retryable: bool | None = None


class StaleState(TerminalError):
    """A request was not in the state a move expected: someone else moved it first."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        shown = ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")
        super().__init__(f"{len(keys)} request(s) were no longer in the expected state: {shown}")


def apply_moves(
    connection: Connection,
    moves: Sequence[Move],
    *,
    actor: str,
    command: str,
    inputs: Mapping[str, str],
    key: bytes | None,
) -> int:
    """Apply every move and append its audit record, in the caller's transaction. Raises
    IllegalTransition before writing anything, StaleState if a request had moved on (the
    caller's transaction then rolls back). Returns the audit head.

    Several moves of one request in a row (ACCEPTED -> MIGRATED after SUBMITTING ->
    ACCEPTED, when the receipt and the outcome are recorded together) are one update of its
    row, from the first move's state to the last's, and one audit record per move."""
    for move in moves:
        check_transition(move.source, move.target, move.idempotency_key)
    if not moves:
        return audit_log.append(
            connection, [], actor=actor, command=command, inputs=inputs, key=key
        )
    at = driver_value(connection, requests.c.updated_at, dt.datetime.now(dt.UTC))
    flags = {
        value: driver_value(connection, requests.c.retryable, value) for value in (True, False)
    }
    chains = _chains(moves)
    larger = "GREATEST" if connection.dialect.name == "postgresql" else "max"
    changed = execute_many(
        connection,
        f"UPDATE requests SET state = ?, reason = ?, attempts = {larger}(attempts + ?, ?),"
        " sends = sends + ?, worker = ?, retryable = ?, updated_at = ?"
        " WHERE idempotency_key = ? AND state = ?",
        [
            (
                last.target.value,
                last.reason,
                sum(1 for m in chain if m.attempted),
                max((m.dcc_attempt or 0) for m in chain),
                sum(1 for m in chain if m.sent),
                last.worker,
                None if last.retryable is None else flags[last.retryable],
                at,
                first.idempotency_key,
                first.source.value,
            )
            for chain in chains
            for first, last in [(chain[0], chain[-1])]
        ],
    )
    if changed != len(chains):
        raise StaleState(_not_moved(connection, [chain[-1] for chain in chains]))
    return audit_log.append(
        connection,
        [
            {
                "batch": move.batch,
                "installation_id": move.installation_id,
                "idempotency_key": move.idempotency_key,
                "from_state": move.source.value,
                "to_state": move.target.value,
                "reason": move.reason,
            }
            for move in moves
        ],
        actor=actor,
        command=command,
        inputs=inputs,
        key=key,
    )


def _chains(moves: Sequence[Move]) -> list[list[Move]]:
    """The moves grouped by request, in order; each request's moves must follow on from one
    another (a move starts where the one before it ended)."""
    chains: dict[str, list[Move]] = {}
    for move in moves:
        chain = chains.setdefault(move.idempotency_key, [])
        if chain and chain[-1].target != move.source:
            raise IllegalTransition(move.idempotency_key, chain[-1].target, move.target)
        chain.append(move)
    return list(chains.values())


def current_states(
    connection: Connection, keys: Sequence[str], *, lock: bool = True
) -> dict[str, RequestState]:
    """The state of each request now; with `lock`, PostgreSQL holds the rows for the caller's
    transaction (SQLite's writing transaction holds the whole database already), so that
    moves built on these states cannot be overtaken before they are applied."""
    found: dict[str, RequestState] = {}
    locking = " FOR UPDATE" if lock and connection.dialect.name == "postgresql" else ""
    for start in range(0, len(keys), LOOKUP):
        part = keys[start : start + LOOKUP]
        # Straight through the driver: a chunk's states are thousands of two-column rows.
        statement = (
            "SELECT idempotency_key, state FROM requests WHERE idempotency_key IN "
            f"({', '.join('?' for _ in part)}){locking}"
        )
        rows = connection.exec_driver_sql(driver_sql(connection, statement), tuple(part)).fetchall()
        found.update({key: STATES[state] for key, state in rows})
    return found


def _not_moved(connection: Connection, moves: Sequence[Move]) -> list[str]:
    """The moves whose request is not now in its target state: the ones that found it moved."""
    found = dict(
        connection.execute(
            select(requests.c.idempotency_key, requests.c.state).where(
                requests.c.idempotency_key.in_([m.idempotency_key for m in moves])
            )
        ).all()
    )
    return [m.idempotency_key for m in moves if found.get(m.idempotency_key) != m.target.value]
