"""Worker: the personalization audit trail, unique per (enrollment, step, prompt version).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "personalizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("enrollment_id", sa.Uuid(), nullable=False),
        sa.Column("step_id", sa.Uuid(), nullable=False),
        sa.Column("prompt_version", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("prompt", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("input", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("fallback_reason", sa.String(length=200), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(12, 6), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "source IN ('openai', 'local', 'fallback')", name=op.f("ck_personalizations_source")
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"], ["enrollments.id"], name=op.f("fk_personalizations_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_personalizations_message_id_messages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_personalizations_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["step_id"], ["campaign_steps.id"], name=op.f("fk_personalizations_step_id_campaign_steps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personalizations")),
        sa.UniqueConstraint(
            "enrollment_id", "step_id", "prompt_version",
            name=op.f("uq_personalizations_enrollment_id_step_id_prompt_version"),
        ),
    )  # fmt: skip
    op.create_index(op.f("ix_personalizations_message_id"), "personalizations", ["message_id"])
    op.create_index(op.f("ix_personalizations_org_id"), "personalizations", ["org_id"])
    enable_tenant_rls("personalizations")


def downgrade() -> None:
    disable_tenant_rls("personalizations")
    op.drop_index(op.f("ix_personalizations_org_id"), table_name="personalizations")
    op.drop_index(op.f("ix_personalizations_message_id"), table_name="personalizations")
    op.drop_table("personalizations")
