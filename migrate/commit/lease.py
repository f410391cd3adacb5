"""Which commit workers are alive, told by locks that die with their holder.

A worker that is killed (SIGKILL included) leaves requests in SUBMITTING or ACCEPTED under
its name. Whoever finds them must know whether their worker is still busy with them or gone:
guessing from timestamps would either resend work a slow worker is doing or wait forever for
a dead one. So every worker holds a lock that the operating system or the database releases
the moment its process dies:

- PostgreSQL: a session advisory lock named after the worker, on a connection of its own;
  another worker may adopt a worker's requests only while holding that lock itself.
- SQLite: an exclusive lock on a file beside the database, which also refuses a second
  commit process, since SQLite serves one worker.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import socket
from pathlib import Path
from types import TracebackType
from typing import IO

from sqlalchemy import Connection, Engine, text

from migrate.errors import ConfigError


def new_worker_id(index: int) -> str:
    """Host, process, thread index and a random tag: unique, and telling in an audit record."""
    host = socket.gethostname()[:30]
    return f"{host}:{os.getpid()}:{index}:{secrets.token_hex(4)}"


def lock_number(worker: str) -> int:
    """The advisory lock's signed 64-bit number for a worker."""
    return int.from_bytes(
        hashlib.sha256(f"migrate-commit:{worker}".encode()).digest()[:8], "big", signed=True
    )


def sqlite_lock_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise ConfigError(None, "commit needs a SQLite store in a file, not in memory", key="db")
    # Named after the file itself: a symlink or another spelling of its path reaches the
    # same store, and must meet the same lock.
    real = Path(database).resolve()
    return real.with_name(real.name + ".commit-lock")


class WorkerLease:
    """Held for the life of one worker; `adoptable` says whether another worker's requests
    may be taken over, inside the adopting transaction."""

    def __init__(self, engine: Engine, worker: str) -> None:
        self.engine = engine
        self.worker = worker
        self._connection: Connection | None = None
        self._file: IO[bytes] | None = None

    def __enter__(self) -> WorkerLease:
        if self.engine.dialect.name == "postgresql":
            self._connection = self.engine.connect()
            self._connection.execute(
                text("SELECT pg_advisory_lock(:n)"), {"n": lock_number(self.worker)}
            )
            self._connection.commit()
        else:
            path = sqlite_lock_path(self.engine)
            handle = path.open("ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise ConfigError(
                    None,
                    f"another `migrate commit` is running on this SQLite store (it holds "
                    f"{path}); SQLite serves one commit worker: wait for it, or use "
                    "PostgreSQL for several",
                    key="db",
                ) from None
            self._file = handle
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            # The pool would keep the session, and a session lock with it: unlock first.
            try:
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:n)"), {"n": lock_number(self.worker)}
                )
                self._connection.commit()
            finally:
                self._connection.close()
                self._connection = None
        if self._file is not None:
            self._file.close()  # releases the flock
            self._file = None

    def adoptable(self, connection: Connection, other: str | None) -> bool:
        """Whether `other`'s requests may be adopted in this transaction: it is dead (its
        lock is free, and stays ours until the transaction ends) or has no name."""
        if other is None or other == self.worker:
            return True
        if connection.dialect.name != "postgresql":
            return True  # the file lock proves no other commit process is running
        return bool(
            connection.execute(
                text("SELECT pg_try_advisory_xact_lock(:n)"), {"n": lock_number(other)}
            ).scalar_one()
        )
