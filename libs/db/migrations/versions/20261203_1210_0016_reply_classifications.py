"""Replies understood: one classification (intent, fields, audit) per inbound reply.

``reply_classifications`` keeps, for each inbound email or text classified, the intent, the
confidence, who decided (``openai`` or ``local``, with the reason the model's answer was not
used), the fields read out (return or not-before date, referral) and the audit figures (prompt
version, model, tokens, cost, latency). Tenant rows: row-level security like the events they
belong to.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

INTENTS = (
    "interested", "meeting_request", "question", "objection", "not_now", "out_of_office", "referral",
    "wrong_person", "not_interested", "unsubscribe", "auto_reply", "other",
)  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "reply_classifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("inbound_event_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("intent", sa.String(length=32), nullable=False),
        sa.Column("confidence", sa.Numeric(4, 3), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("matched", sa.String(length=200), nullable=True),
        sa.Column("fallback_reason", sa.String(length=200), nullable=True),
        sa.Column("prompt_version", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(12, 6), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "intent IN (" + ", ".join(f"'{i}'" for i in INTENTS) + ")", name=op.f("ck_reply_classifications_intent")
        ),
        sa.CheckConstraint("source IN ('openai', 'local')", name=op.f("ck_reply_classifications_source")),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name=op.f("ck_reply_classifications_confidence")
        ),
        sa.ForeignKeyConstraint(
            ["inbound_event_id"], ["inbound_events.id"],
            name=op.f("fk_reply_classifications_inbound_event_id_inbound_events"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_reply_classifications_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_reply_classifications_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reply_classifications")),
    )  # fmt: skip
    op.create_index(op.f("ix_reply_classifications_org_id"), "reply_classifications", ["org_id"])
    op.create_index(op.f("ix_reply_classifications_inbound_event_id"), "reply_classifications", ["inbound_event_id"])
    op.create_index(
        op.f("ix_reply_classifications_org_id_created_at"), "reply_classifications", ["org_id", "created_at"]
    )
    enable_tenant_rls("reply_classifications")


def downgrade() -> None:
    disable_tenant_rls("reply_classifications")
    op.drop_table("reply_classifications")
