"""Replies acted on: per-campaign reply actions and enrollments paused until a date.

``campaigns.reply_actions`` maps each reply intent to what the campaign does with it (its safe
defaults are ``libs.db.models.campaign.DEFAULT_REPLY_ACTIONS``); ``enrollments.paused_until`` and
``paused_reason`` record a reply's "write again after" (the ticker waits through ``next_due_at``).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# As of this revision (the model's constant may grow later; this revision keeps what it wrote).
DEFAULT_REPLY_ACTIONS = {
    "interested": "stop",
    "meeting_request": "stop",
    "question": "stop",
    "objection": "stop",
    "not_now": "pause",
    "out_of_office": "pause",
    "referral": "refer",
    "wrong_person": "stop",
    "not_interested": "stop",
    "unsubscribe": "unsubscribe",
    "auto_reply": "continue",
    "other": "stop",
}


def upgrade() -> None:
    op.add_column(
        "campaigns",
        sa.Column(
            "reply_actions",
            JSONB(),
            nullable=False,
            server_default=sa.text(f"'{json.dumps(DEFAULT_REPLY_ACTIONS)}'::jsonb"),
        ),
    )
    op.add_column("enrollments", sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("enrollments", sa.Column("paused_reason", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("enrollments", "paused_reason")
    op.drop_column("enrollments", "paused_until")
    op.drop_column("campaigns", "reply_actions")
