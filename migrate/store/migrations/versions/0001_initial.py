"""The first store: batches, installations, devices, requests, attempts, audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# PostgreSQL refuses to change or remove an audit record, whoever asks.
AUDIT_APPEND_ONLY = """
CREATE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
"""


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("cohort", sa.String(100), nullable=False),
        sa.Column("plan_sha256", sa.String(64), nullable=False),
        sa.Column("plan_path", sa.Text, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "installations",
        sa.Column("batch", sa.String(200), primary_key=True),
        sa.Column("installation_id", sa.String(200), primary_key=True),
        sa.Column("supplier_mpid", sa.String(20)),
        sa.Column("smso", sa.String(100)),
        sa.Column("mode", sa.String(20)),
        sa.Column("mpan_core", sa.String(13)),
        sa.Column("mprn", sa.String(10)),
        sa.Column("combination", sa.String(100)),
        sa.Column("planned_date", sa.Date),
        sa.ForeignKeyConstraint(["batch"], ["batches.name"]),
    )
    op.create_table(
        "devices",
        sa.Column("batch", sa.String(200), primary_key=True),
        sa.Column("installation_id", sa.String(200), primary_key=True),
        sa.Column("device_id", sa.String(23), primary_key=True),
        sa.Column("device_type", sa.String(10), nullable=False),
        sa.Column("manufacturer", sa.String(100)),
        sa.Column("model", sa.String(100)),
        sa.Column("firmware_version", sa.String(100)),
        sa.Column("msn", sa.String(100)),
        sa.Column("mpxn", sa.String(13)),
        sa.ForeignKeyConstraint(
            ["batch", "installation_id"],
            ["installations.batch", "installations.installation_id"],
        ),
    )
    op.create_table(
        "requests",
        sa.Column("idempotency_key", sa.String(64), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("batch", sa.String(200), nullable=False),
        sa.Column("cohort", sa.String(100), nullable=False),
        sa.Column("installation_id", sa.String(200), nullable=False),
        sa.Column("supplier_mpid", sa.String(20)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(50)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("planned_date", sa.Date),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch", "installation_id"],
            ["installations.batch", "installations.installation_id"],
        ),
    )
    op.create_index("requests_batch_state", "requests", ["batch", "state"])
    op.create_table(
        "attempts",
        sa.Column("idempotency_key", sa.String(64), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("outcome", sa.String(50)),
        sa.Column("detail", sa.Text),
        sa.ForeignKeyConstraint(["idempotency_key"], ["requests.idempotency_key"]),
    )
    op.create_table(
        "audit",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("command", sa.String(50), nullable=False),
        sa.Column("batch", sa.String(200)),
        sa.Column("installation_id", sa.String(200)),
        sa.Column("idempotency_key", sa.String(64)),
        sa.Column("from_state", sa.String(20)),
        sa.Column("to_state", sa.String(20)),
        sa.Column("reason", sa.String(100)),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64)),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    # The one head row exists from the start, so that writers can lock it (an empty log's
    # head is the genesis hash).
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(AUDIT_APPEND_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_no_truncate ON audit")
        op.execute("DROP TRIGGER IF EXISTS audit_append_only ON audit")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    for table in ("audit_head", "audit", "attempts", "requests", "devices", "installations"):
        op.drop_table(table)
    op.drop_table("batches")
