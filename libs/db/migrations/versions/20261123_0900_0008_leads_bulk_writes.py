"""Leads: drop the per-row foreign key check on ``org_id`` so bulk imports are not paying it per row.

PostgreSQL checks a foreign key with one trigger call per inserted row; on a million-row
import that was about a third of the database's work (measured by ``bench/import.py``).
Every writer of ``leads`` sets ``org_id`` from a verified source (the request's
organization under row-level security, or the import job's own ``lead_imports`` row, which
keeps its foreign key), and organizations are never deleted by the application, so the
check guarded nothing a writer could get wrong. Deleting an organization must now delete
its leads explicitly (rows referencing leads cascade from there).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FK = "fk_leads_org_id_organizations"


def upgrade() -> None:
    op.drop_constraint(FK, "leads", type_="foreignkey")


def downgrade() -> None:
    op.create_foreign_key(FK, "leads", "organizations", ["org_id"], ["id"], ondelete="CASCADE")
