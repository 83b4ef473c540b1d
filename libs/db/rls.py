"""Row-level security helpers used by migrations: the second lock on tenant isolation."""

from __future__ import annotations

from alembic import op

from libs.db.base import APP_ROLE, ORG_SETTING, SYSTEM_ROLE

CURRENT_ORG = f"NULLIF(current_setting('{ORG_SETTING}', true), '')::uuid"


def create_roles() -> None:
    """Create the app and system roles (cluster-wide, so only when missing) and grant them."""
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN;
            END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SYSTEM_ROLE}') THEN
                CREATE ROLE {SYSTEM_ROLE} NOLOGIN BYPASSRLS;
            END IF;
        END
        $$;
        """
    )
    op.execute(f"GRANT {APP_ROLE}, {SYSTEM_ROLE} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}, {SYSTEM_ROLE}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}, {SYSTEM_ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}, {SYSTEM_ROLE}"
    )


def grant_existing() -> None:
    """Grant the roles on tables that existed before the default privileges were set."""
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}, {SYSTEM_ROLE}")


def enable_tenant_rls(table: str, column: str = "org_id") -> None:
    """Force row-level security on ``table``: rows are visible only to their organization."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} USING ({column} = {CURRENT_ORG}) WITH CHECK ({column} = {CURRENT_ORG})"
    )


def disable_tenant_rls(table: str) -> None:
    """Undo :func:`enable_tenant_rls` (for downgrades)."""
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
