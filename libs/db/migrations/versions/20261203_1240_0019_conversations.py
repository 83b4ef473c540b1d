"""One inbox: each lead's conversation with its read state and the member it is assigned to.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 12:40:00
"""

from __future__ import annotations

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
