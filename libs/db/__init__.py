"""The database: one schema, one Alembic history, tenant-scoped and system sessions."""
