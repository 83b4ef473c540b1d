"""Leads: leads, lead imports and their rejected rows, suppressions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 06:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("suppressions", "lead_import_rejections", "leads", "lead_imports")


def _org(table: str) -> list[Any]:
    return [
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f(f"fk_{table}_org_id_organizations"), ondelete="CASCADE"
        ),
    ]


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "lead_imports",
        sa.Column("id", sa.Uuid(), nullable=False),
        *_org("lead_imports"),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("file_path", sa.String(length=1024), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("encoding", sa.String(length=32), nullable=True),
        sa.Column("delimiter", sa.String(length=1), nullable=True),
        sa.Column("default_region", sa.String(length=2), nullable=False),
        sa.Column("mapping", postgresql.JSONB(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("options", postgresql.JSONB(), server_default=sa.text("'{}'"), nullable=False),
        _counter("rows_read"),
        _counter("rows_imported"),
        _counter("rows_updated"),
        _counter("rows_rejected"),
        _counter("rows_duplicate"),
        _counter("rows_suppressed"),
        _counter("checkpoint_row"),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed')", name=op.f("ck_lead_imports_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_imports")),
        sa.UniqueConstraint("org_id", "idempotency_key", name=op.f("uq_lead_imports_org_id_idempotency_key")),
    )
    op.create_index(op.f("ix_lead_imports_org_id"), "lead_imports", ["org_id"], unique=False)
    op.create_index("ix_lead_imports_org_id_created_at_id", "lead_imports", ["org_id", "created_at", "id"])

    op.create_table(
        "leads",
        sa.Column("id", sa.Uuid(), nullable=False),
        *_org("leads"),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("email_normalized", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=16), nullable=True),
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("custom_fields", postgresql.JSONB(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("consent_email_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consent_sms_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consent_voice_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consent_source", sa.String(length=200), nullable=True),
        sa.Column("consent_sms_source", sa.String(length=200), nullable=True),
        sa.Column("consent_voice_source", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("import_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'suppressed', 'erased')", name=op.f("ck_leads_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint("org_id", "email_normalized", name=op.f("uq_leads_org_id_email_normalized")),
    )
    op.create_index("ix_leads_org_id_created_at_id", "leads", ["org_id", "created_at", "id"])
    op.create_index("ix_leads_org_id_phone", "leads", ["org_id", "phone"])
    op.create_index("ix_leads_import_id", "leads", ["import_id"])
    op.create_index(
        "ix_leads_org_id_phone_no_email",
        "leads",
        ["org_id", "phone"],
        unique=True,
        postgresql_where=sa.text("email_normalized IS NULL AND phone IS NOT NULL"),
    )

    op.create_table(
        "lead_import_rejections",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        *_org("lead_import_rejections"),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("cells", postgresql.JSONB(), server_default=sa.text("'[]'"), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["lead_imports.id"],
            name=op.f("fk_lead_import_rejections_import_id_lead_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "row_number", name=op.f("pk_lead_import_rejections")),
    )
    op.create_index(op.f("ix_lead_import_rejections_org_id"), "lead_import_rejections", ["org_id"], unique=False)

    op.create_table(
        "suppressions",
        sa.Column("id", sa.Uuid(), nullable=False),
        *_org("suppressions"),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("channel IN ('email', 'sms', 'voicemail', 'all')", name=op.f("ck_suppressions_channel")),
        sa.CheckConstraint("kind IN ('email', 'phone', 'domain', 'hash')", name=op.f("ck_suppressions_kind")),
        sa.CheckConstraint(
            "reason IN ('unsubscribe', 'stop', 'bounce', 'complaint', 'manual', 'erasure')",
            name=op.f("ck_suppressions_reason"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint(
            "org_id", "kind", "value", "channel", name=op.f("uq_suppressions_org_id_kind_value_channel")
        ),
    )
    op.create_index(op.f("ix_suppressions_org_id"), "suppressions", ["org_id"], unique=False)
    op.create_index("ix_suppressions_org_id_created_at_id", "suppressions", ["org_id", "created_at", "id"])

    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(table)
        op.drop_table(table)
