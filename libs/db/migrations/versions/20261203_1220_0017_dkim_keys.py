"""DKIM: a key pair per sending domain, kept encrypted.

A rotation keeps the replaced key (``previous_*``) to sign next to the new one for a while.
Also who signs each email sender's mail (``sender_signing``: Tidewater or the sender's own
server). Both are tenant tables with row-level security.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 12:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dkim_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("selector", sa.String(length=63), nullable=False),
        sa.Column("private_key_encrypted", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_selector", sa.String(length=63), nullable=True),
        sa.Column("previous_private_key_encrypted", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_dkim_keys_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dkim_keys")),
        sa.UniqueConstraint("org_id", "domain", name=op.f("uq_dkim_keys_org_id_domain")),
    )
    op.create_index(op.f("ix_dkim_keys_org_id"), "dkim_keys", ["org_id"], unique=False)
    enable_tenant_rls("dkim_keys")

    op.create_table(
        "sender_signing",
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("dkim", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("dkim IN ('tidewater', 'own_server')", name=op.f("ck_sender_signing_dkim")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_sender_signing_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["senders.id"], name=op.f("fk_sender_signing_sender_id_senders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sender_id", name=op.f("pk_sender_signing")),
    )
    op.create_index(op.f("ix_sender_signing_org_id"), "sender_signing", ["org_id"], unique=False)
    enable_tenant_rls("sender_signing")


def downgrade() -> None:
    disable_tenant_rls("sender_signing")
    op.drop_index(op.f("ix_sender_signing_org_id"), table_name="sender_signing")
    op.drop_table("sender_signing")
    disable_tenant_rls("dkim_keys")
    op.drop_index(op.f("ix_dkim_keys_org_id"), table_name="dkim_keys")
    op.drop_table("dkim_keys")
