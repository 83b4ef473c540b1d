"""Alembic environment: one history for the whole schema."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

import libs.db.models  # noqa: F401 - registers every table on the metadata
from libs.settings import normalize_database_url

config = context.config


def _database_url() -> str:
    given = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not given:
        from libs.settings import CommonSettings

        given = CommonSettings().database_url
    return normalize_database_url(str(given))


url = _database_url()
target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    """Emit SQL without a connection."""
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over a connection, serialised by an advisory lock so concurrent starts are safe."""
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7263561)")
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
