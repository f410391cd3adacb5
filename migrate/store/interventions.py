"""An engineer's own moves of requests, outside a commit: send failed ones again (once the
cause is cured: master keys delivered, a held failure reviewed) or withdraw staged ones from
the go-live. Each is audited under the engineer's name, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, func, select

from migrate.errors import ConfigError
from migrate.store import audit_log
from migrate.store.engine import require_current
from migrate.store.moves import LOOKUP, Move, apply_moves
from migrate.store.schema import attempts, batches, requests
from migrate.store.states import UNANSWERED, RequestState

S = RequestState


@dataclass(frozen=True)
class Intervention:
    batch: str
    moved: int
    installation_ids: list[str]
    audit_head: int


def requeue_failed(
    engine: Engine,
    batch: str,
    *,
    reasons: Sequence[str] = (),
    installations: Sequence[str] = (),
    actor: str,
    key: bytes | None,
) -> Intervention:
    """FAILED requests of the batch back to STAGED, with the reason they failed for; only
    those of `reasons` and/or `installations` when given. Their attempt count stays, so the
    cohort's attempt limit still counts what the DCC was already asked."""
    if not reasons and not installations:
        raise ConfigError(
            None,
            "name the failures to send again (--reason) or the installations (--installation):"
            " a key conflict or a refused payload would only fail again",
            key="reason",
        )
    return _move(
        engine, batch, S.FAILED, S.STAGED, reasons=reasons, installations=installations,
        actor=actor, key=key, command="requeue",
    )  # fmt: skip


def withdraw(
    engine: Engine, batch: str, *, installations: Sequence[str], actor: str, key: bytes | None
) -> Intervention:
    """STAGED requests of the named installations out of the go-live (WITHDRAWN is final).

    Not one whose last send went unanswered: the DCC may hold it and migrate it still, and
    a new request for its installation (a new plan, once this one is withdrawn) would then
    enrol it twice. The next commit resends it with its key and learns the DCC's answer."""
    if not installations:
        raise ConfigError(None, "name the installations to withdraw", key="installation")
    return _move(
        engine, batch, S.STAGED, S.WITHDRAWN, reasons=(), installations=installations,
        actor=actor, key=key, command="withdraw", refuse=_maybe_held,
    )  # fmt: skip


def _maybe_held(connection: Connection, batch: str, found: Sequence[Row[Any]]) -> None:
    """Refuse requests whose last send's answer was lost (see `withdraw`)."""
    keys = [row.idempotency_key for row in found]
    held: set[str] = set()
    for start in range(0, len(keys), LOOKUP):
        part = keys[start : start + LOOKUP]
        last = (
            select(attempts.c.idempotency_key, func.max(attempts.c.attempt).label("attempt"))
            .where(attempts.c.idempotency_key.in_(part))
            .group_by(attempts.c.idempotency_key)
            .subquery()
        )
        held.update(
            connection.execute(
                select(attempts.c.idempotency_key)
                .join(
                    last,
                    and_(
                        attempts.c.idempotency_key == last.c.idempotency_key,
                        attempts.c.attempt == last.c.attempt,
                    ),
                )
                .where(attempts.c.outcome == UNANSWERED)
            ).scalars()
        )
    if held:
        ids = sorted(row.installation_id for row in found if row.idempotency_key in held)
        shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
        raise ConfigError(
            None,
            f"{len(ids)} installation(s) were sent to the DCC and the answer was lost, so the "
            "DCC may hold their requests: withdrawn, one could still migrate there, and a new "
            f"request for it would enrol it twice. Run `migrate commit --batch {batch}` to "
            "learn the DCC's answer (it resends with the same keys), then withdraw what is "
            f"still STAGED: {shown}",
            key="installation",
        )


def _move(
    engine: Engine,
    batch: str,
    source: RequestState,
    target: RequestState,
    *,
    reasons: Sequence[str],
    installations: Sequence[str],
    actor: str,
    key: bytes | None,
    command: str,
    refuse: Callable[[Connection, str, Sequence[Row[Any]]], None] | None = None,
) -> Intervention:
    require_current(engine)
    with engine.begin() as connection:
        audit_log.require_matching_key(connection, key)
        if (
            connection.execute(select(batches.c.name).where(batches.c.name == batch)).first()
            is None
        ):
            raise ConfigError(None, f"no batch {batch!r} in the store", key="batch")
        query = select(
            requests.c.idempotency_key, requests.c.installation_id, requests.c.reason
        ).where(requests.c.batch == batch, requests.c.state == source.value)
        if reasons:
            query = query.where(requests.c.reason.in_(list(reasons)))
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        found = connection.execute(query).all()
        if installations:
            wanted = set(installations)
            found = [row for row in found if row.installation_id in wanted]
            missing = sorted(wanted - {row.installation_id for row in found})
            if missing:
                shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
                raise ConfigError(
                    None,
                    f"{len(missing)} installation(s) have no {source.value} request in batch "
                    f"{batch!r} (see `migrate status --batch {batch}`): {shown}",
                    key="installation",
                )
        if refuse is not None:
            refuse(connection, batch, found)
        moves = [
            Move(row.idempotency_key, batch, row.installation_id, source, target,
                 reason=row.reason if target == S.STAGED else "WITHDRAWN_BY_OPERATOR")
            for row in found
        ]  # fmt: skip
        head = 0
        for start in range(0, len(moves), LOOKUP):
            head = apply_moves(
                connection,
                moves[start : start + LOOKUP],
                actor=actor,
                command=command,
                inputs={"batch": batch},
                key=key,
            )
        if not moves:
            head = audit_log.append(
                connection, [], actor=actor, command=command, inputs={}, key=key
            )
    return Intervention(batch, len(moves), sorted(m.installation_id for m in moves), head)
