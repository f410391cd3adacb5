"""The cohort's daily capacity per supplier, drawn from one allowance in the store.

The DCC rations migrations per supplier per day (MSM DMIN: 100). Keeping the count in the
store, updated in the same transaction as the claim, lets every worker of a batch, in any
process, draw from the same allowance: they cannot together send more than the day holds.
The DCC's own 429 remains the backstop.

The day is the UK's (Europe/London), as the DCC's is: from the last Sunday of March to the
last Sunday of October it begins at 23:00 UTC, and a run just after midnight in summer draws
on the new day's allowance, not on the one it spent an hour before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from migrate.store.schema import capacity_use

# A request without a supplier is counted under this name (the DCC would refuse it anyway).
NO_SUPPLIER = ""
UK = ZoneInfo("Europe/London")


def capacity_day(moment: dt.datetime) -> dt.date:
    """The UK day a moment falls in: the day whose allowance a send draws on."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime has no time zone: give an aware one")
    return moment.astimezone(UK).date()


def spent(connection: Connection, day: dt.date, capacity: int) -> list[str]:
    """Suppliers whose allowance for `day` is used up."""
    return list(
        connection.execute(
            select(capacity_use.c.supplier_mpid).where(
                capacity_use.c.day == day, capacity_use.c.used >= capacity
            )
        ).scalars()
    )


def reserve(
    connection: Connection, day: dt.date, wanted: Mapping[str, int], capacity: int
) -> dict[str, int]:
    """Take up to `wanted` sends per supplier from the day's allowance, in the caller's
    transaction; returns what was granted. Suppliers are locked in name order, so two
    workers never wait on each other in a circle."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    granted: dict[str, int] = {}
    for supplier in sorted(wanted):
        connection.execute(
            insert(capacity_use)
            .values(supplier_mpid=supplier, day=day, used=0)
            .on_conflict_do_nothing()
        )
        where = and_(capacity_use.c.supplier_mpid == supplier, capacity_use.c.day == day)
        query = select(capacity_use.c.used).where(where)
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        used = int(connection.execute(query).scalar_one())
        grant = max(0, min(wanted[supplier], capacity - used))
        if grant:
            connection.execute(update(capacity_use).where(where).values(used=used + grant))
        granted[supplier] = grant
    return granted


def refund(connection: Connection, day: dt.date, counts: Mapping[str, int]) -> None:
    """Give back sends that never reached the DCC (released after it was unavailable)."""
    for supplier in sorted(counts):
        if counts[supplier] <= 0:
            continue
        where = and_(capacity_use.c.supplier_mpid == supplier, capacity_use.c.day == day)
        query = select(capacity_use.c.used).where(where)
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        used = connection.execute(query).scalar_one_or_none()
        if used is not None:
            connection.execute(
                update(capacity_use).where(where).values(used=max(0, int(used) - counts[supplier]))
            )
