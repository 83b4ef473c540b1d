"""Email senders read their mailboxes: IMAP settings on senders and each mailbox's cursor.

A sender's IMAP settings sit beside its SMTP ones (the password encrypted, its last four shown).
``mailboxes`` holds one cursor per sender (UIDVALIDITY and the last UID handed to the inbound
path), its state (``paused`` with the reason after a refused login) and the lease of the poller
process reading it. Tenant rows: row-level security like the senders they belong to.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_IMAP_COLUMNS = (
    ("imap_host", sa.String(length=255)),
    ("imap_port", sa.Integer()),
    ("imap_tls", sa.String(length=16)),
    ("imap_username", sa.String(length=320)),
    ("imap_password_encrypted", sa.Text()),
    ("imap_password_last4", sa.String(length=4)),
    ("imap_folder", sa.String(length=255)),
)


def upgrade() -> None:
    for name, type_ in _IMAP_COLUMNS:
        op.add_column("senders", sa.Column(name, type_, nullable=True))
    op.create_check_constraint(
        op.f("ck_senders_imap_tls"), "senders", "imap_tls IS NULL OR imap_tls IN ('tls', 'starttls', 'none')"
    )
    op.create_table(
        "mailboxes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("folder", sa.String(length=255), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_event_id", sa.Uuid(), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("paused_reason", sa.String(length=500), nullable=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("state IN ('active', 'paused')", name=op.f("ck_mailboxes_state")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_mailboxes_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["senders.id"], name=op.f("fk_mailboxes_sender_id_senders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailboxes")),
        sa.UniqueConstraint("sender_id", name=op.f("uq_mailboxes_sender_id")),
    )
    op.create_index(op.f("ix_mailboxes_org_id"), "mailboxes", ["org_id"], unique=False)
    op.create_index(
        op.f("ix_mailboxes_state_lease_expires_at"), "mailboxes", ["state", "lease_expires_at"], unique=False
    )
    enable_tenant_rls("mailboxes")


def downgrade() -> None:
    disable_tenant_rls("mailboxes")
    op.drop_table("mailboxes")
    op.drop_constraint(op.f("ck_senders_imap_tls"), "senders", type_="check")
    for name, _ in reversed(_IMAP_COLUMNS):
        op.drop_column("senders", name)
