"""What the commit stage needs: who holds a request, whether a failure may be retried, how
many times it was sent, and each supplier's capacity used per day.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as table:
        table.add_column(sa.Column("worker", sa.String(64)))
        table.add_column(sa.Column("retryable", sa.Boolean))
        table.add_column(sa.Column("sends", sa.Integer, nullable=False, server_default="0"))
    # Claims take the earliest planned STAGED requests of a batch straight from this index,
    # which also serves every lookup by batch and state: the older index would only be one
    # more to update at each change of state.
    op.drop_index("requests_batch_state", table_name="requests")
    op.create_index(
        "requests_claim", "requests", ["batch", "state", "planned_date", "idempotency_key"]
    )
    op.create_table(
        "capacity_use",
        sa.Column("supplier_mpid", sa.String(20), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("used", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("capacity_use")
    op.drop_index("requests_claim", table_name="requests")
    op.create_index("requests_batch_state", "requests", ["batch", "state"])
    with op.batch_alter_table("requests") as table:
        table.drop_column("sends")
        table.drop_column("retryable")
        table.drop_column("worker")
