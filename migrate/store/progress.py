"""Progress of batches: requests by state and reason, as the store holds them now."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from migrate.store.engine import require_current
from migrate.store.schema import requests


@dataclass(frozen=True)
class StateCount:
    batch: str
    state: str
    reason: str | None
    requests: int


def batch_status(engine: Engine, batch: str | None = None) -> list[StateCount]:
    require_current(engine)
    query = (
        select(requests.c.batch, requests.c.state, requests.c.reason, func.count())
        .group_by(requests.c.batch, requests.c.state, requests.c.reason)
        .order_by(requests.c.batch, requests.c.state, requests.c.reason)
    )
    if batch is not None:
        query = query.where(requests.c.batch == batch)
    with engine.connect() as connection:
        return [StateCount(b, s, r, int(n)) for b, s, r, n in connection.execute(query)]
