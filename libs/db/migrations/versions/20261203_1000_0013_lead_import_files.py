"""Uploaded import files kept in PostgreSQL, so the process that runs an import needs no shared disk.

The campaign service that receives a CSV upload stores its bytes here, in 1 MiB chunks, in the
transaction that registers the import; the worker that runs the import reads them back on any
host. The chunks are deleted once the import has finished (completed or failed), as the file on
disk was before. Tenant rows: row-level security like the imports they belong to.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from libs.db.rls import disable_tenant_rls, enable_tenant_rls

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead_import_files",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["lead_imports.id"],
            name=op.f("fk_lead_import_files_import_id_lead_imports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_lead_import_files_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("import_id", "seq", name=op.f("pk_lead_import_files")),
    )
    op.create_index(op.f("ix_lead_import_files_org_id"), "lead_import_files", ["org_id"], unique=False)
    # Already compressed or not, a CSV chunk is not worth TOAST's compression pass on the hot path.
    op.execute("ALTER TABLE lead_import_files ALTER COLUMN data SET STORAGE EXTERNAL")
    enable_tenant_rls("lead_import_files")


def downgrade() -> None:
    disable_tenant_rls("lead_import_files")
    op.drop_table("lead_import_files")
