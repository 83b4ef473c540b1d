"""Foundation: roles for row-level security and the organizations table.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from libs.db.rls import create_roles, disable_tenant_rls, enable_tenant_rls

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_roles()
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    enable_tenant_rls("organizations", column="id")


def downgrade() -> None:
    disable_tenant_rls("organizations")
    op.drop_table("organizations")
