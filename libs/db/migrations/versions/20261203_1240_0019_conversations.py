"""One inbox: each lead's conversation with its read state and the member it is assigned to.

Only what people decide is stored (``read_at``, ``assigned_member_id``); last activity and the
last inbound moment are derived from ``messages`` and ``inbound_events`` when the inbox is
read, which the new index over ``inbound_events (lead_id, received_at)`` serves. Tenant rows:
row-level security like every other tenant table.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assigned_member_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_conversations_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_conversations_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["assigned_member_id"],
            ["users.id"],
            name=op.f("fk_conversations_assigned_member_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_conversations")),
    )
    op.create_index(op.f("ix_conversations_org_id"), "conversations", ["org_id"], unique=False)
    op.create_index(
        "ix_conversations_org_id_assigned_member_id", "conversations", ["org_id", "assigned_member_id"], unique=False
    )
    op.create_index("ix_inbound_events_lead_id_received_at", "inbound_events", ["lead_id", "received_at"], unique=False)
    enable_tenant_rls("conversations")


def downgrade() -> None:
    op.drop_index("ix_inbound_events_lead_id_received_at", table_name="inbound_events")
    disable_tenant_rls("conversations")
    op.drop_table("conversations")
