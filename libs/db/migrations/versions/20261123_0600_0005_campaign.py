"""Campaign: campaigns, steps, enrollments, the message ledger and its events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 06:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("campaigns", "campaign_steps", "enrollments", "messages", "message_events")


def _ts(name: str, *, nullable: bool = True, server_default: bool = False) -> sa.Column[Any]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if server_default else None,
    )


def _org() -> sa.Column[Any]:
    return sa.Column("org_id", sa.Uuid(), nullable=False)


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"], ["organizations.id"], name=op.f(f"fk_{table}_org_id_organizations"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Uuid(), nullable=False),
        _org(),
        sa.Column("brand_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="draft", nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column(
            "send_window",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text('\'{"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}\'::jsonb'),
            nullable=False,
        ),
        sa.Column(
            "stop_rules",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text(
                '\'{"on_reply": true, "on_click": false, "on_unsubscribe": true, "on_bounce": false}\'::jsonb'
            ),
            nullable=False,
        ),
        sa.Column("pacing_per_day", sa.Integer(), nullable=True),
        sa.Column(
            "ai",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text('\'{"enabled": true, "instructions": null, "model": null}\'::jsonb'),
            nullable=False,
        ),
        sa.Column("cloned_from_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False, server_default=True),
        _ts("launched_at"),
        _ts("paused_at"),
        _ts("completed_at"),
        _ts("archived_at"),
        sa.CheckConstraint(
            "status IN ('draft', 'active', 'paused', 'completed', 'archived')", name=op.f("ck_campaigns_status")
        ),
        sa.CheckConstraint("pacing_per_day IS NULL OR pacing_per_day > 0", name=op.f("ck_campaigns_pacing_per_day")),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brands.id"], name=op.f("fk_campaigns_brand_id_brands"), ondelete="RESTRICT"
        ),
        _org_fk("campaigns"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(op.f("ix_campaigns_org_id"), "campaigns", ["org_id"])
    op.create_index(op.f("ix_campaigns_brand_id"), "campaigns", ["brand_id"])
    op.create_index("ix_campaigns_org_id_created_at_id", "campaigns", ["org_id", "created_at", "id"])

    op.create_table(
        "campaign_steps",
        sa.Column("id", sa.Uuid(), nullable=False),
        _org(),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("delay_minutes", sa.Integer(), nullable=False),
        sa.Column("delay_unit", sa.String(length=16), server_default="days", nullable=False),
        sa.Column("business_days", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("subject_template", sa.Text(), nullable=True),
        sa.Column("body_template", sa.Text(), nullable=True),
        sa.Column("sms_template", sa.Text(), nullable=True),
        sa.Column("script_template", sa.Text(), nullable=True),
        sa.Column("audio_url", sa.String(length=2048), nullable=True),
        sa.Column("ai_instructions", sa.Text(), nullable=True),
        sa.Column(
            "variants", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False, server_default=True),
        sa.CheckConstraint("channel IN ('email', 'sms', 'voicemail')", name=op.f("ck_campaign_steps_channel")),
        sa.CheckConstraint("delay_unit IN ('minutes', 'hours', 'days')", name=op.f("ck_campaign_steps_delay_unit")),
        sa.CheckConstraint("delay_minutes >= 0", name=op.f("ck_campaign_steps_delay_minutes")),
        sa.CheckConstraint("position >= 1", name=op.f("ck_campaign_steps_position")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_steps_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        _org_fk("campaign_steps"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_steps")),
        sa.UniqueConstraint("campaign_id", "position", name=op.f("uq_campaign_steps_campaign_id_position")),
    )
    op.create_index(op.f("ix_campaign_steps_org_id"), "campaign_steps", ["org_id"])

    op.create_table(
        "enrollments",
        sa.Column("id", sa.Uuid(), nullable=False),
        _org(),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("next_step_position", sa.Integer(), server_default=sa.text("1"), nullable=False),
        _ts("next_due_at"),
        sa.Column("stopped_reason", sa.String(length=64), nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False, server_default=True),
        _ts("completed_at"),
        sa.CheckConstraint(
            "status IN ('active', 'paused', 'completed', 'stopped')", name=op.f("ck_enrollments_status")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_enrollments_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_enrollments_lead_id_leads"), ondelete="CASCADE"
        ),
        _org_fk("enrollments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
        sa.UniqueConstraint("campaign_id", "lead_id", name=op.f("uq_enrollments_campaign_id_lead_id")),
    )
    op.create_index(op.f("ix_enrollments_org_id"), "enrollments", ["org_id"])
    op.create_index("ix_enrollments_status_next_due_at", "enrollments", ["status", "next_due_at"])
    op.create_index(
        "ix_enrollments_due_active",
        "enrollments",
        ["next_due_at"],
        postgresql_where=sa.text("status = 'active' AND next_due_at IS NOT NULL"),
    )
    op.create_index("ix_enrollments_lead_id_status", "enrollments", ["lead_id", "status"])
    op.create_index("ix_enrollments_campaign_id_created_at_id", "enrollments", ["campaign_id", "created_at", "id"])

    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        _org(),
        sa.Column("enrollment_id", sa.Uuid(), nullable=False),
        sa.Column("step_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("variant", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _ts("due_at"),
        _ts("next_attempt_at"),
        sa.Column("hold_reason", sa.String(length=64), nullable=True),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        _ts("sent_at"),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False, server_default=True),
        sa.CheckConstraint(
            "status IN ('queued', 'rendering', 'sending', 'sent', 'delivered', 'failed', 'bounced', 'unknown', "
            "'held', 'skipped')",
            name=op.f("ck_messages_status"),
        ),
        sa.CheckConstraint("channel IN ('email', 'sms', 'voicemail')", name=op.f("ck_messages_channel")),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_messages_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["step_id"], ["campaign_steps.id"], name=op.f("fk_messages_step_id_campaign_steps")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_messages_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_messages_lead_id_leads"), ondelete="CASCADE"),
        _org_fk("messages"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("enrollment_id", "step_id", name=op.f("uq_messages_enrollment_id_step_id")),
    )
    op.create_index(op.f("ix_messages_org_id"), "messages", ["org_id"])
    op.create_index("ix_messages_org_id_created_at_id", "messages", ["org_id", "created_at", "id"])
    op.create_index("ix_messages_campaign_id_step_id", "messages", ["campaign_id", "step_id"])
    op.create_index("ix_messages_lead_id_created_at", "messages", ["lead_id", "created_at"])
    op.create_index("ix_messages_status_next_attempt_at", "messages", ["status", "next_attempt_at"])

    op.create_table(
        "message_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        _org(),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        _ts("occurred_at", nullable=False),
        sa.Column(
            "data", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.CheckConstraint(
            "type IN ('sent', 'delivered', 'opened', 'clicked', 'replied', 'bounced', 'unsubscribed', 'failed', "
            "'held')",
            name=op.f("ck_message_events_type"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_message_events_message_id_messages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_message_events_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_message_events_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        _org_fk("message_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_events")),
    )
    op.create_index(op.f("ix_message_events_org_id"), "message_events", ["org_id"])
    op.create_index(
        "ix_message_events_campaign_id_type_occurred_at", "message_events", ["campaign_id", "type", "occurred_at"]
    )
    op.create_index("ix_message_events_message_id_occurred_at", "message_events", ["message_id", "occurred_at"])
    op.create_index("ix_message_events_lead_id_occurred_at", "message_events", ["lead_id", "occurred_at"])

    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
