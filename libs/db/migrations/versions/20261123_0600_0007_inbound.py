"""Inbound: received events (dedupe), tracked message links, customer webhook endpoints and deliveries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 06:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("inbound_events", "message_links", "webhook_endpoints", "webhook_deliveries", "webhook_attempts")


def _org() -> sa.Column[Any]:
    return sa.Column("org_id", sa.Uuid(), nullable=False)


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"], ["organizations.id"], name=op.f(f"fk_{table}_org_id_organizations"), ondelete="CASCADE"
    )


def _ts(name: str, *, nullable: bool = True, server_default: bool = False) -> sa.Column[Any]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if server_default else None,
    )


def _jsonb(name: str, default: str) -> sa.Column[Any]:
    return sa.Column(name, postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text(default), nullable=False)


def upgrade() -> None:
    op.create_table(
        "inbound_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        _org(),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=False),
        sa.Column("idempotency_token", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="received", nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        _jsonb("payload", "'{}'"),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("received_at", nullable=False, server_default=True),
        _ts("processed_at"),
        _ts("effective_at"),
        sa.CheckConstraint(
            "source IN ('twilio_message_status', 'twilio_call_status', 'twilio_sms', 'email', 'unsubscribe', "
            "'open', 'click')",
            name=op.f("ck_inbound_events_source"),
        ),
        sa.CheckConstraint(
            "status IN ('received', 'processed', 'ignored', 'failed')", name=op.f("ck_inbound_events_status")
        ),
        _org_fk("inbound_events"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_inbound_events_message_id_messages"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_inbound_events_lead_id_leads"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_events")),
        sa.UniqueConstraint("org_id", "source", "dedupe_key", name=op.f("uq_inbound_events_org_id_source_dedupe_key")),
    )
    op.create_index(op.f("ix_inbound_events_org_id"), "inbound_events", ["org_id"])
    op.create_index(
        "ix_inbound_events_org_id_idempotency_token",
        "inbound_events",
        ["org_id", "idempotency_token"],
        unique=True,
        postgresql_where=sa.text("idempotency_token IS NOT NULL"),
    )
    op.create_index("ix_inbound_events_org_id_received_at", "inbound_events", ["org_id", "received_at"])
    op.create_index("ix_inbound_events_message_id", "inbound_events", ["message_id"])

    op.create_table(
        "message_links",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _org(),
        sa.Column("url", sa.String(length=2048), nullable=False),
        _ts("created_at", nullable=False),
        sa.CheckConstraint("position >= 0", name=op.f("ck_message_links_position")),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_message_links_message_id_messages"), ondelete="CASCADE"
        ),
        _org_fk("message_links"),
        sa.PrimaryKeyConstraint("message_id", "position", name=op.f("pk_message_links")),
    )
    op.create_index(op.f("ix_message_links_org_id"), "message_links", ["org_id"])

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        _org(),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        _jsonb("event_types", "'[]'"),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False, server_default=True),
        _org_fk("webhook_endpoints"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(op.f("ix_webhook_endpoints_org_id"), "webhook_endpoints", ["org_id"])
    op.create_index("ix_webhook_endpoints_org_id_created_at_id", "webhook_endpoints", ["org_id", "created_at", "id"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        _org(),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        _jsonb("payload", "'{}'"),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _ts("next_attempt_at"),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False, server_default=True),
        _ts("delivered_at"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name=op.f("ck_webhook_deliveries_status")),
        _org_fk("webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("endpoint_id", "event_id", name=op.f("uq_webhook_deliveries_endpoint_id_event_id")),
    )
    op.create_index(op.f("ix_webhook_deliveries_org_id"), "webhook_deliveries", ["org_id"])
    op.create_index(
        "ix_webhook_deliveries_endpoint_id_created_at_id", "webhook_deliveries", ["endpoint_id", "created_at", "id"]
    )

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        _org(),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        _ts("started_at", nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("response_excerpt", sa.String(length=500), nullable=True),
        _org_fk("webhook_attempts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
        sa.UniqueConstraint("delivery_id", "number", name=op.f("uq_webhook_attempts_delivery_id_number")),
    )
    op.create_index(op.f("ix_webhook_attempts_org_id"), "webhook_attempts", ["org_id"])

    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
