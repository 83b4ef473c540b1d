"""Review mode for first touches: a campaign's review setting and messages awaiting review.

A campaign says which of its messages wait for a person's approval (``review_mode``: ``off``,
the first ``review_first_n`` of each step, or ``all``), how long they may wait
(``review_deadline_hours``, none for ever) and what happens then (``review_after_deadline``:
``skip`` or ``send``). A message waiting is ``awaiting_review`` (a new status the CHECK
constraint accepts) with its deadline, and keeps who approved or rejected it, when, and why.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 12:50:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_BEFORE = "status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'bounced', 'unknown', 'held', 'skipped')"
_WITH_REVIEW = (
    "status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'bounced', 'unknown', 'held', 'skipped', "
    "'awaiting_review')"
)


def _ts(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("review_mode", sa.String(16), server_default="off", nullable=False))
    op.add_column("campaigns", sa.Column("review_first_n", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("campaigns", sa.Column("review_deadline_hours", sa.Integer(), nullable=True))
    op.add_column("campaigns", sa.Column("review_after_deadline", sa.String(16), server_default="skip", nullable=False))
    op.create_check_constraint(
        op.f("ck_campaigns_review_mode"), "campaigns", "review_mode IN ('off', 'first_n', 'all')"
    )
    op.create_check_constraint(op.f("ck_campaigns_review_first_n"), "campaigns", "review_first_n >= 0")
    op.create_check_constraint(
        op.f("ck_campaigns_review_deadline_hours"),
        "campaigns",
        "review_deadline_hours IS NULL OR review_deadline_hours > 0",
    )
    op.create_check_constraint(
        op.f("ck_campaigns_review_after_deadline"), "campaigns", "review_after_deadline IN ('skip', 'send')"
    )

    op.add_column("messages", _ts("review_deadline_at"))
    op.add_column("messages", sa.Column("reviewed_by", sa.Uuid(), nullable=True))
    op.add_column("messages", _ts("reviewed_at"))
    op.add_column("messages", sa.Column("review_note", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_messages_status"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_status"), "messages", _WITH_REVIEW)
    op.create_index(
        "ix_messages_awaiting_review",
        "messages",
        ["campaign_id", "created_at", "id"],
        postgresql_where=sa.text("status = 'awaiting_review'"),
    )
    op.create_index(
        "ix_messages_review_deadline_at",
        "messages",
        ["review_deadline_at"],
        postgresql_where=sa.text("status = 'awaiting_review' AND review_deadline_at IS NOT NULL"),
    )


def downgrade() -> None:
    # A message still waiting has not gone anywhere: it is skipped, never sent unreviewed.
    op.execute(
        "UPDATE messages SET status = 'skipped', hold_reason = 'review_removed', updated_at = now() "
        "WHERE status = 'awaiting_review'"
    )
    op.drop_index("ix_messages_review_deadline_at", table_name="messages")
    op.drop_index("ix_messages_awaiting_review", table_name="messages")
    op.drop_constraint(op.f("ck_messages_status"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_status"), "messages", _BEFORE)
    for column in ("review_note", "reviewed_at", "reviewed_by", "review_deadline_at"):
        op.drop_column("messages", column)
    for name in ("review_after_deadline", "review_deadline_hours", "review_first_n", "review_mode"):
        op.drop_constraint(op.f(f"ck_campaigns_{name}"), "campaigns", type_="check")
        op.drop_column("campaigns", name)
