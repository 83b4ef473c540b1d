"""Sender pools: the sender each enrollment keeps, and per-sender pacing (ramp, gaps, provider caps).

``campaigns.sender_pool`` names the senders of each kind a campaign sends from (a kind left out:
all the brand's); ``enrollments.{email,sms,voice}_sender_id`` is the sender a lead's steps of that
kind go from, chosen at the first send and kept (no foreign key: a removed sender's id stays, so
the hand-off to another sender can say whose leads it took). ``senders`` gets the ramp
(``ramp_start``, ``ramp_step``), the random gap between two sends (``min_gap_seconds``,
``max_gap_seconds``) and daily caps per recipient provider (``provider_daily_caps``). A hand-off
is a ``sender_changed`` event on the lead's timeline.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_KINDS = ("email", "sms", "voice")
_EVENTS = "'sent', 'delivered', 'opened', 'clicked', 'replied', 'bounced', 'unsubscribed', 'failed', 'held'"


def _event_types(extra: str = "") -> None:
    op.drop_constraint(op.f("ck_message_events_type"), "message_events", type_="check")
    op.create_check_constraint(op.f("ck_message_events_type"), "message_events", f"type IN ({_EVENTS}{extra})")


def upgrade() -> None:
    _event_types(", 'sender_changed'")
    op.add_column("campaigns", sa.Column("sender_pool", JSONB(), nullable=True))
    for kind in _KINDS:
        op.add_column("enrollments", sa.Column(f"{kind}_sender_id", sa.Uuid(), nullable=True))
        op.create_index(
            op.f(f"ix_enrollments_{kind}_sender_id"),
            "enrollments",
            [f"{kind}_sender_id"],
            postgresql_where=sa.text(f"{kind}_sender_id IS NOT NULL"),
        )
    for column in ("ramp_start", "ramp_step", "min_gap_seconds", "max_gap_seconds"):
        op.add_column("senders", sa.Column(column, sa.Integer(), nullable=True))
    op.add_column("senders", sa.Column("provider_daily_caps", JSONB(), nullable=True))
    op.create_check_constraint(op.f("ck_senders_ramp_start"), "senders", "ramp_start IS NULL OR ramp_start > 0")
    op.create_check_constraint(op.f("ck_senders_ramp_step"), "senders", "ramp_step IS NULL OR ramp_step >= 0")
    op.create_check_constraint(
        op.f("ck_senders_gap"),
        "senders",
        "min_gap_seconds IS NULL OR (min_gap_seconds >= 0 AND max_gap_seconds >= min_gap_seconds)",
    )


def downgrade() -> None:
    op.execute("DELETE FROM message_events WHERE type = 'sender_changed'")
    _event_types()
    for name in ("gap", "ramp_step", "ramp_start"):
        op.drop_constraint(op.f(f"ck_senders_{name}"), "senders", type_="check")
    for column in ("provider_daily_caps", "max_gap_seconds", "min_gap_seconds", "ramp_step", "ramp_start"):
        op.drop_column("senders", column)
    for kind in _KINDS:
        op.drop_index(op.f(f"ix_enrollments_{kind}_sender_id"), table_name="enrollments")
        op.drop_column("enrollments", f"{kind}_sender_id")
    op.drop_column("campaigns", "sender_pool")
