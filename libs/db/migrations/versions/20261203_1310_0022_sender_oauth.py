"""Senders connected with OAuth 2.0: the authorization in progress and the encrypted tokens.

``senders.auth_mode`` says how a sender logs in (``password`` or ``oauth2``); ``oauth_clients``
holds an organization's OAuth client per provider (its secret sealed), ``oauth_authorizations``
the authorizations in progress (hashed state, sealed PKCE verifier, ten minutes, used once) and
``sender_oauth`` a sender's sealed access and refresh tokens. All three are tenant tables with
row-level security.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 13:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def _org(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"], ["organizations.id"], name=op.f(f"fk_{table}_org_id_organizations"), ondelete="CASCADE"
    )


def _sender(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["sender_id"], ["senders.id"], name=op.f(f"fk_{table}_sender_id_senders"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.add_column("senders", sa.Column("auth_mode", sa.String(length=16), server_default="password", nullable=False))
    op.create_check_constraint(op.f("ck_senders_auth_mode"), "senders", "auth_mode IN ('password', 'oauth2')")

    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("client_id", sa.String(length=500), nullable=False),
        sa.Column("client_secret_encrypted", sa.Text(), nullable=False),
        sa.Column("client_secret_last4", sa.String(length=4), nullable=False),
        sa.Column("authorize_url", sa.String(length=2048), nullable=False),
        sa.Column("token_url", sa.String(length=2048), nullable=False),
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("provider IN ('google', 'microsoft', 'generic')", name=op.f("ck_oauth_clients_provider")),
        _org("oauth_clients"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_clients")),
        sa.UniqueConstraint("org_id", "provider", name=op.f("uq_oauth_clients_org_id_provider")),
    )
    op.create_index(op.f("ix_oauth_clients_org_id"), "oauth_clients", ["org_id"], unique=False)
    enable_tenant_rls("oauth_clients")

    op.create_table(
        "oauth_authorizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("verifier_encrypted", sa.Text(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=False),
        sa.Column("expires_at", _TZ, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        _org("oauth_authorizations"),
        _sender("oauth_authorizations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_authorizations")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_oauth_authorizations_state_hash")),
    )
    op.create_index(op.f("ix_oauth_authorizations_org_id"), "oauth_authorizations", ["org_id"], unique=False)
    enable_tenant_rls("oauth_authorizations")

    op.create_table(
        "sender_oauth",
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("access_token_encrypted", sa.Text(), nullable=False),
        sa.Column("refresh_token_encrypted", sa.Text(), nullable=True),
        sa.Column("expires_at", _TZ, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("connected_at", _TZ, nullable=False),
        sa.Column("refreshed_at", _TZ, nullable=True),
        sa.Column("updated_at", _TZ, server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("status IN ('connected', 'reconnect')", name=op.f("ck_sender_oauth_status")),
        _org("sender_oauth"),
        _sender("sender_oauth"),
        sa.PrimaryKeyConstraint("sender_id", name=op.f("pk_sender_oauth")),
    )
    op.create_index(op.f("ix_sender_oauth_org_id"), "sender_oauth", ["org_id"], unique=False)
    enable_tenant_rls("sender_oauth")


def downgrade() -> None:
    for table in ("sender_oauth", "oauth_authorizations", "oauth_clients"):
        disable_tenant_rls(table)
        op.drop_index(op.f(f"ix_{table}_org_id"), table_name=table)
        op.drop_table(table)
    op.drop_constraint(op.f("ck_senders_auth_mode"), "senders", type_="check")
    op.drop_column("senders", "auth_mode")
