"""Sender health: automatic pauses with their reason and cooldown, and complaints.

``senders.paused_at`` is set when a health rule (or a provider's answer) stops a sender; the
worker's LOAD picks no paused sender. ``paused_reason`` says why in words, ``paused_rule`` names
the rule (``smtp_auth``, ``smtp_policy``, ``hard_bounce_rate``, ``twilio_auth``,
``complaint_rate``) and ``pause_cooldown_until``, set by a member's resume, is the time before
which no rule pauses the sender again.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("senders", sa.Column("paused_at", _TZ, nullable=True))
    op.add_column("senders", sa.Column("paused_reason", sa.String(length=500), nullable=True))
    op.add_column("senders", sa.Column("paused_rule", sa.String(length=32), nullable=True))
    op.add_column("senders", sa.Column("pause_cooldown_until", _TZ, nullable=True))


def downgrade() -> None:
    op.drop_column("senders", "pause_cooldown_until")
    op.drop_column("senders", "paused_rule")
    op.drop_column("senders", "paused_reason")
    op.drop_column("senders", "paused_at")
