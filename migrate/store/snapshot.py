"""A read-only view of the store for readers that take seconds (a reconciliation reads a
batch and the whole audit log): they should not hold up the commit workers meanwhile, and
what they read must be one state of the store, not a mix of before and after a commit.

The store's SQLite engine begins every transaction with BEGIN IMMEDIATE, which takes the
write lock; a reader here begins a deferred transaction instead, which in WAL mode reads one
snapshot and lets writers on. Several such readers also run at once. PostgreSQL readers
never block writers; a reader's transaction there is REPEATABLE READ and read-only, so that
all its statements see one snapshot (under the default, READ COMMITTED, the audit head read
first and the records read next could straddle a commit, and a good log would look tampered
with: records beyond the head).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event


@contextmanager
def reader(engine: Engine) -> Iterator[Engine]:
    """An engine onto the same store for reading only, for the duration of the block."""
    if engine.dialect.name != "sqlite":
        yield engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        return
    snapshot = create_engine(engine.url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(snapshot, "connect")
    def _autocommit(connection, _record):  # type: ignore[no-untyped-def]
        connection.isolation_level = None  # transactions begun below, not by the driver
        connection.execute("PRAGMA query_only=ON")

    @event.listens_for(snapshot, "begin")
    def _begin(connection):  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN DEFERRED")

    try:
        yield snapshot
    finally:
        snapshot.dispose()
