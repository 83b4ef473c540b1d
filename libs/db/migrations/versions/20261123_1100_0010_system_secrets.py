"""System secrets: deployment-wide keys stored sealed, so that rotating SDR_SECRET_KEY never changes them.

The first is the key of erasure hashes (``libs.suppression.stored_hash_key``): it was derived
from ``SDR_SECRET_KEY`` directly, so a rotation would have stopped matching every erased
person's hash, and the people who asked to be forgotten could be contacted again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "system_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_system_secrets")),
    )
    # Only system code reads these: the tenant role gets no access at all.
    op.execute("REVOKE ALL ON system_secrets FROM tidewater_app")


def downgrade() -> None:
    op.drop_table("system_secrets")
