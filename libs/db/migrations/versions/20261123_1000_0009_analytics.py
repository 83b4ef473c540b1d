"""Message events: cover the analytics' columns in the campaign index so they never read the table.

``ix_message_events_campaign_id_type_occurred_at`` already found a campaign's events (and a
window's by ``occurred_at``), but every match was a heap fetch, and the events of one campaign
are spread over the whole table among every other campaign's (they are appended in time
order): for a whole campaign the planner preferred a sequential scan of all of them. Carrying
``message_id`` and ``org_id`` (the row-level security filter) in the index lets the analytics
read only the campaign's index entries (an index-only scan on a vacuumed table). Measured by
``bench/analytics.py``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEX = "ix_message_events_campaign_id_type_occurred_at"
COLUMNS = ["campaign_id", "type", "occurred_at"]


def upgrade() -> None:
    op.drop_index(INDEX, table_name="message_events")
    op.create_index(INDEX, "message_events", COLUMNS, postgresql_include=["message_id", "org_id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="message_events")
    op.create_index(INDEX, "message_events", COLUMNS)
