"""Requests by installation: staging looks up every live request of the installations it is
about to stage, so that a new device set (a new request key) is not staged beside the old
request. Without this index that is a scan of every request, at each staging.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("requests_installation", "requests", ["installation_id"])


def downgrade() -> None:
    op.drop_index("requests_installation", table_name="requests")
