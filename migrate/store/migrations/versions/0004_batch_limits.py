"""A batch keeps the limits of the cohort rules it was planned with (capacity per supplier
per day, attempt limit): the go-live run does what the dry run said, whatever later edits to
the cohort file. Batches staged before this version have none and go by the cohort file.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("batches", sa.Column("capacity_per_day", sa.Integer(), nullable=True))
    op.add_column("batches", sa.Column("max_attempts", sa.Integer(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later), not a batch copy of the table:
    # other tables' foreign keys point at batches, so it cannot be dropped and made anew.
    op.execute("ALTER TABLE batches DROP COLUMN max_attempts")
    op.execute("ALTER TABLE batches DROP COLUMN capacity_per_day")
