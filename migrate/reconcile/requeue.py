"""Acting on a reconciliation: stuck requests and retryable failures back to STAGED, ready
for the next commit, each move audited, all in one transaction.

Only what the reconciliation found STUCK or FAILED_RETRYABLE and carrying no other
discrepancy is moved: one the DCC already lists, or whose devices differ between the sides,
needs a person to find out which side is right first (resending would only repeat a stale
payload). Each request is read again, locked, inside the transaction: one a commit worker
moved or touched since the reconciliation read it is left where it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, select

from migrate.reconcile.compare import REQUEUED, Category
from migrate.store import audit_log
from migrate.store.moves import LOOKUP, Move, apply_moves
from migrate.store.schema import requests
from migrate.store.states import RequestState

STUCK_REASON = "REQUEUED_STUCK"
FAILED_REASON = "REQUEUED_FAILED"  # a retryable failure that came without a reason
WAITING = frozenset({RequestState.SUBMITTING, RequestState.ACCEPTED})


@dataclass(frozen=True)
class RequeueResult:
    """requeued: moved to STAGED (stuck + failed); left: candidates carrying another
    discrepancy; moved_on: candidates a worker moved since they were read; audit_head: the
    head after the moves (None when nothing moved)."""

    requeued: int
    stuck: int
    failed: int
    left: int
    moved_on: int
    audit_head: int | None
    installation_ids: list[str]


def candidates(installations: pa.Table) -> tuple[pa.Table, int]:
    """The installations to requeue (id, category), and how many of their categories were
    left alone because they carry another discrepancy."""
    category = installations.column("category")
    eligible = pc.is_in(category, value_set=pa.array(sorted(REQUEUED)))
    clean = pc.equal(pc.list_value_length(installations.column("discrepancies")), 0)
    chosen = installations.filter(pc.and_(eligible, clean)).select(["installation_id", "category"])
    left = int(pc.sum(pc.cast(eligible, pa.int64())).as_py() or 0) - chosen.num_rows
    return chosen, left


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite gives back the UTC wall time without its zone."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


@dataclass(frozen=True)
class _Now:
    key: str
    state: str
    reason: str | None
    updated_at: dt.datetime
    retryable: bool | None


def _current(connection: Connection, batch: str, ids: list[str]) -> dict[str, _Now]:
    """Each installation's request in the batch as it stands now, locked for this
    transaction (PostgreSQL: the rows; SQLite's writing transaction holds the database)."""
    found = {}
    for start in range(0, len(ids), LOOKUP):
        query = (
            select(
                requests.c.installation_id,
                requests.c.idempotency_key,
                requests.c.state,
                requests.c.reason,
                requests.c.updated_at,
                requests.c.retryable,
            )
            .where(requests.c.batch == batch)
            .where(requests.c.installation_id.in_(ids[start : start + LOOKUP]))
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        for row in connection.execute(query):
            found[row.installation_id] = _Now(
                row.idempotency_key, row.state, row.reason, _utc(row.updated_at), row.retryable
            )
    return found


def requeue(
    engine: Engine,
    chosen: pa.Table,
    *,
    batch: str,
    cutoff: dt.datetime,
    left: int,
    actor: str,
    key: bytes | None,
    inputs: Mapping[str, str],
) -> RequeueResult:
    """Move the chosen requests back to STAGED in one transaction, with their audit records.
    A stuck request keeps none of its worker's claim; a failed one keeps its failure's
    reason, so the next commit's log says why it was sent again."""
    ids = chosen.column("installation_id").to_pylist()
    categories = chosen.column("category").to_pylist()
    moves: list[Move] = []
    stuck = 0
    with engine.begin() as connection:
        audit_log.require_matching_key(connection, key)
        now = _current(connection, batch, ids)
        for installation, category in zip(ids, categories, strict=True):
            request = now.get(installation)
            if request is None:
                continue
            if (
                category == Category.STUCK
                and request.state in WAITING
                and request.updated_at < cutoff
            ):
                why = STUCK_REASON
                stuck += 1
            elif (
                category == Category.FAILED_RETRYABLE
                and request.state == RequestState.FAILED
                and request.retryable
            ):
                why = request.reason or FAILED_REASON
            else:
                continue
            moves.append(
                Move(
                    request.key,
                    batch,
                    installation,
                    RequestState(request.state),
                    RequestState.STAGED,
                    reason=why,
                    worker=None,
                    retryable=None,
                )
            )
        head = (
            apply_moves(connection, moves, actor=actor, command="reconcile", inputs=inputs, key=key)
            if moves
            else None
        )
    return RequeueResult(
        requeued=len(moves),
        stuck=stuck,
        failed=len(moves) - stuck,
        left=left,
        moved_on=len(ids) - len(moves),
        audit_head=head,
        installation_ids=sorted(move.installation_id for move in moves),
    )
