"""Campaign steps: an optional send window of their own.

A step without one (``NULL``) keeps to its campaign's window, as every step did before; a step
with one (for example a Saturday SMS in a weekday email sequence) uses its own, and SMS and
voicemail steps are still narrowed to calling hours.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaign_steps", sa.Column("send_window", JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("campaign_steps", "send_window")
