"""Where the store lives and whether its schema is current.

SQLite (a file in the working folder, WAL mode) for one engineer; PostgreSQL (psycopg 3) for
production and for several workers at once. The schema is versioned by Alembic; a store at an
older version is refused with the command that upgrades it, never used half-migrated, and a
store at a version this toolkit does not know (a newer toolkit upgraded it) is refused by every
command, `migrate db upgrade` included: no migration here can take it back.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from migrate.errors import ConfigError

ENV_URL = "MIGRATE_DATABASE_URL"
DEFAULT_URL = "sqlite:///migrate.db"
# What the store runs on: SQLite through Python's own driver, PostgreSQL through psycopg 3
# (its COPY is the bulk path; `postgresql+psycopg2` URLs are taken to mean it).
SCHEMES = {"sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}
SQLITE_HEADER = b"SQLite format 3\x00"


def database_url(explicit: str | None = None) -> str:
    """--db, then $MIGRATE_DATABASE_URL, then a SQLite file in the working folder."""
    return explicit or os.environ.get(ENV_URL) or DEFAULT_URL


def shown(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable database URL)"


def make_engine(url: str | None = None) -> Engine:
    """The store's engine. Its errors never show the statement's bound values (MPANs,
    installation ids), which would otherwise reach stderr and the logs in their messages."""
    url = database_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ConfigError(None, f"not a database URL: {error}", key="db") from None
    except ValueError:
        # int() of the port, whose text is not shown: a password holding an unescaped '@' or
        # ':' (p@ss:word) is split there, and its tail would be taken for the port.
        raise ConfigError(
            None,
            "not a database URL: its port is not a number (percent-encode '@', ':' and '/' "
            "in a password)",
            key="db",
        ) from None
    if parsed.drivername not in SCHEMES:
        raise ConfigError(
            None,
            f"unsupported database URL scheme {parsed.drivername!r}: the store runs on "
            "sqlite:///FILE or postgresql+psycopg://USER@HOST/DATABASE",
            key="db",
        )
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record):  # type: ignore[no-untyped-def]
            # The driver's own transaction handling is off: BEGIN IMMEDIATE below takes the
            # write lock at the start, so two writers queue instead of deadlocking.
            connection.isolation_level = None
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA cache_size=-262144")  # 256 MB of pages for bulk staging
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection):  # type: ignore[no-untyped-def]
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in {"", "psycopg2"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(Path(str(resources.files("migrate.store"))) / "migrations")
    )
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _refuse_newer(engine: Engine, current: str) -> None:
    """Refuse a store at a revision none of this toolkit's migrations made: Alembic cannot
    place it, so the advice to upgrade would only fail again."""
    script = ScriptDirectory.from_config(alembic_config())
    if any(known.revision == current for known in script.walk_revisions()):
        return
    raise ConfigError(
        None,
        f"the store at {shown(str(engine.url))} is newer than this toolkit: it is at schema "
        f"version {current}, and this toolkit knows versions up to {script.get_current_head()}. "
        "Use the newer toolkit that upgraded it (`migrate db upgrade` cannot take a store back)",
        key="db",
    )


def _sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite store; None for PostgreSQL, and for the in-memory and URI forms,
    which SQLite resolves itself."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or "uri" in url.query:
        return None
    return Path(url.database)


def _require_sqlite_database(path: Path) -> None:
    """Refuse a file that is not a SQLite database before connecting to it, naming it: the
    driver's own error says neither which file nor that --db is to blame. An empty file is
    an empty database."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise ConfigError(path, f"cannot read the store: {error.strerror}", key="db") from None
    if header and header != SQLITE_HEADER:
        raise ConfigError(
            path, "not a SQLite database: check --db or $MIGRATE_DATABASE_URL", key="db"
        )


def current_revision(engine: Engine) -> str | None:
    path = _sqlite_file(engine)
    if path is not None and path.exists():
        _require_sqlite_database(path)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as error:
        raise ConfigError(
            None, f"cannot reach the store at {shown(str(engine.url))}: {error.orig}", key="db"
        ) from None


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest version; returns (from, to)."""
    before = current_revision(engine)
    if before is not None:
        _refuse_newer(engine, before)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, head_revision()


def require_current(engine: Engine) -> None:
    """Refuse a store that is missing or behind, naming the command that fixes it, or ahead
    of this toolkit. A SQLite file that is not there is not created: connecting would leave
    an empty one behind."""
    path = _sqlite_file(engine)
    current = None if path is not None and not path.exists() else current_revision(engine)
    head = head_revision()
    where = shown(str(engine.url))
    if current is None:
        raise ConfigError(None, f"no store at {where} yet: run `migrate db upgrade`", key="db")
    _refuse_newer(engine, current)
    if current != head:
        raise ConfigError(
            None,
            f"the store at {where} is at schema version {current}, this toolkit needs {head}: "
            "run `migrate db upgrade`",
            key="db",
        )
