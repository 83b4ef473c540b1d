"""Brand: brands, senders, provider credentials.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("provider_credentials", "senders", "brands")


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "brands",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("website", sa.String(length=2048), nullable=True),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("value_proposition", sa.String(length=2000), nullable=True),
        sa.Column("target_audience", sa.String(length=2000), nullable=True),
        sa.Column("tone_of_voice", sa.String(length=500), nullable=True),
        sa.Column("proof_points", postgresql.JSONB(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("forbidden_claims", postgresql.JSONB(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("email_signature", sa.String(length=2000), nullable=True),
        sa.Column("sms_signoff", sa.String(length=160), nullable=True),
        sa.Column("postal_address", sa.String(length=500), nullable=True),
        sa.Column("opt_out_email", sa.String(length=500), nullable=True),
        sa.Column("opt_out_sms", sa.String(length=300), nullable=True),
        sa.Column("opt_out_voicemail", sa.String(length=500), nullable=True),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        *_timestamps(),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_brands_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_brands")),
    )
    op.create_index(op.f("ix_brands_org_id"), "brands", ["org_id"], unique=False)
    op.create_index("ix_brands_org_id_created_at_id", "brands", ["org_id", "created_at", "id"], unique=False)

    op.create_table(
        "senders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("brand_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("from_name", sa.String(length=200), nullable=True),
        sa.Column("from_address", sa.String(length=320), nullable=True),
        sa.Column("reply_to", sa.String(length=320), nullable=True),
        sa.Column("smtp_host", sa.String(length=255), nullable=True),
        sa.Column("smtp_port", sa.Integer(), nullable=True),
        sa.Column("smtp_security", sa.String(length=16), nullable=True),
        sa.Column("smtp_username", sa.String(length=320), nullable=True),
        sa.Column("smtp_password_encrypted", sa.Text(), nullable=True),
        sa.Column("smtp_password_last4", sa.String(length=4), nullable=True),
        sa.Column("hourly_limit", sa.Integer(), nullable=True),
        sa.Column("phone_number", sa.String(length=16), nullable=True),
        sa.Column("messaging_service_sid", sa.String(length=34), nullable=True),
        sa.Column("tts_voice", sa.String(length=64), nullable=True),
        sa.Column("audio_url", sa.String(length=2048), nullable=True),
        sa.Column("daily_limit", sa.Integer(), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_verification", postgresql.JSONB(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("kind IN ('email', 'sms', 'voice')", name=op.f("ck_senders_kind")),
        sa.CheckConstraint(
            "smtp_security IS NULL OR smtp_security IN ('starttls', 'tls', 'none')",
            name=op.f("ck_senders_smtp_security"),
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brands.id"], name=op.f("fk_senders_brand_id_brands"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_senders_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_senders")),
    )
    op.create_index(op.f("ix_senders_org_id"), "senders", ["org_id"], unique=False)
    op.create_index("ix_senders_brand_id_created_at_id", "senders", ["brand_id", "created_at", "id"], unique=False)

    op.create_table(
        "provider_credentials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("account_sid", sa.String(length=64), nullable=True),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("secret_last4", sa.String(length=4), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("provider IN ('twilio', 'openai')", name=op.f("ck_provider_credentials_provider")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_provider_credentials_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_credentials")),
        sa.UniqueConstraint("org_id", "provider", name=op.f("uq_provider_credentials_org_id_provider")),
    )
    op.create_index(op.f("ix_provider_credentials_org_id"), "provider_credentials", ["org_id"], unique=False)

    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(table)
    op.drop_table("provider_credentials")
    op.drop_table("senders")
    op.drop_table("brands")
