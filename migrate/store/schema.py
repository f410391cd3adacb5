"""The store's tables (SQLAlchemy Core): batches, installations, devices, requests, attempts
and the audit log. Alembic migrations in migrations/ create and evolve them; this module is
what the code reads and writes through."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from migrate.errors import ConfigError

metadata = MetaData()
# The longest batch name or actor the store keeps (their columns' length).
NAME_LENGTH = 200


def require_name(value: str, option: str) -> str:
    """A batch name or actor as given (--batch, --actor), refused when longer than its
    columns hold: PostgreSQL would refuse it mid-write where SQLite keeps it whole."""
    if len(value) > NAME_LENGTH:
        raise ConfigError(
            None,
            f"--{option} is {len(value):,} characters long; the store keeps at most {NAME_LENGTH}",
            key=option,
        )
    return value


batches = Table(
    "batches",
    metadata,
    Column("name", String(NAME_LENGTH), primary_key=True),
    Column("cohort", String(100), nullable=False),
    Column("plan_sha256", String(64), nullable=False),
    Column("plan_path", Text, nullable=False),
    # The plan's input hashes (extracts, mapping, cohort) as JSON: what the batch was made of.
    Column("inputs", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(NAME_LENGTH), nullable=False),
    # The limits of the cohort rules the plan was made with (NULL: staged before 0004).
    Column("capacity_per_day", Integer),
    Column("max_attempts", Integer),
)

installations = Table(
    "installations",
    metadata,
    Column("batch", String(NAME_LENGTH), primary_key=True),
    Column("installation_id", String(200), primary_key=True),
    Column("supplier_mpid", String(20)),
    Column("smso", String(100)),
    Column("mode", String(20)),
    Column("mpan_core", String(13)),
    Column("mprn", String(10)),
    Column("combination", String(100)),
    Column("planned_date", Date),
    ForeignKeyConstraint(["batch"], ["batches.name"]),
)

devices = Table(
    "devices",
    metadata,
    Column("batch", String(NAME_LENGTH), primary_key=True),
    Column("installation_id", String(200), primary_key=True),
    Column("device_id", String(23), primary_key=True),
    Column("device_type", String(10), nullable=False),
    Column("manufacturer", String(100)),
    Column("model", String(100)),
    Column("firmware_version", String(100)),
    Column("msn", String(100)),
    Column("mpxn", String(13)),
    ForeignKeyConstraint(
        ["batch", "installation_id"], ["installations.batch", "installations.installation_id"]
    ),
)

requests = Table(
    "requests",
    metadata,
    # One enrolment request per installation per cohort, named by its idempotency key.
    Column("idempotency_key", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("batch", String(NAME_LENGTH), nullable=False),
    Column("cohort", String(100), nullable=False),
    Column("installation_id", String(200), nullable=False),
    Column("supplier_mpid", String(20)),
    Column("state", String(20), nullable=False),
    Column("reason", String(50)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("planned_date", Date),
    Column("payload", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The commit worker holding the request while it is SUBMITTING or ACCEPTED.
    Column("worker", String(64)),
    # For a FAILED request: whether a later attempt may cure it.
    Column("retryable", Boolean),
    # Times the request was sent; each send is a row of `attempts`.
    Column("sends", Integer, nullable=False, default=0, server_default="0"),
    ForeignKeyConstraint(
        ["batch", "installation_id"], ["installations.batch", "installations.installation_id"]
    ),
    Index("requests_claim", "batch", "state", "planned_date", "idempotency_key"),
    # Staging finds the live requests of the installations it stages, whatever their key.
    Index("requests_installation", "installation_id"),
)

# New requests sent per supplier per day, shared by every worker, so that together they keep
# within the cohort's daily capacity.
capacity_use = Table(
    "capacity_use",
    metadata,
    Column("supplier_mpid", String(20), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("used", Integer, nullable=False),
)

attempts = Table(
    "attempts",
    metadata,
    Column("idempotency_key", String(64), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("outcome", String(50)),
    Column("detail", Text),
    ForeignKeyConstraint(["idempotency_key"], ["requests.idempotency_key"]),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("actor", String(NAME_LENGTH), nullable=False),
    Column("command", String(50), nullable=False),
    Column("batch", String(NAME_LENGTH)),
    Column("installation_id", String(200)),
    Column("idempotency_key", String(64)),
    Column("from_state", String(20)),
    Column("to_state", String(20)),
    Column("reason", String(100)),
    Column("inputs", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("mac", String(64)),
)

# The chain's head, kept apart from the log: a log cut short at its tail still verifies
# record by record, and only this row tells that records are missing.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
