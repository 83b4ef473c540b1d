"""A step without its own send window stores SQL NULL, not a JSON null.

The worker reads a step's window as ``COALESCE(step.send_window, campaign.send_window)``; a JSON
``null`` (what the ORM wrote for ``None`` before ``none_as_null``) is not SQL NULL, so such a step
ignored its campaign's window and sent at any hour. This turns every stored JSON null into NULL.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 13:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE campaign_steps SET send_window = NULL WHERE send_window = 'null'::jsonb")


def downgrade() -> None:
    pass  # NULL is what every reader already expects: nothing to undo
