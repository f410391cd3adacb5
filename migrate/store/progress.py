"""Progress of batches: requests by state and reason, as the store holds them now."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from migrate.errors import ConfigError
from migrate.store.engine import require_current
from migrate.store.schema import batches, requests


@dataclass(frozen=True)
class StateCount:
    batch: str
    state: str
    reason: str | None
    requests: int


def batch_status(engine: Engine, batch: str | None = None) -> list[StateCount]:
    """Counts by batch, state and reason, ordered alike on every database (no reason
    first); a batch the store does not hold is an error, not an empty answer."""
    require_current(engine)
    query = (
        select(requests.c.batch, requests.c.state, requests.c.reason, func.count())
        .group_by(requests.c.batch, requests.c.state, requests.c.reason)
        .order_by(requests.c.batch, requests.c.state, requests.c.reason.asc().nulls_first())
    )
    if batch is not None:
        query = query.where(requests.c.batch == batch)
    with engine.connect() as connection:
        counts = [StateCount(b, s, r, int(n)) for b, s, r, n in connection.execute(query)]
        if batch is not None and not counts:
            known = connection.execute(
                select(batches.c.name).where(batches.c.name == batch)
            ).first()
            if known is None:
                raise ConfigError(None, f"no batch {batch!r} in the store", key="batch")
    return counts
