"""Engines and sessions: a tenant session per request, a system session for system work.

A tenant session runs its transaction as the app role with the organization set by
``SET LOCAL``, so PostgreSQL row-level security hides every other tenant's rows even when a
query forgets its filter. A system session runs as the system role, which bypasses it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.base import APP_ROLE, ORG_SETTING, SYSTEM_ROLE
from libs.settings import normalize_database_url

_SET_ORG = sa.text(f"SELECT set_config('{ORG_SETTING}', :org, true)")
_AS_APP = sa.text(f"SET LOCAL ROLE {APP_ROLE}")
_AS_SYSTEM = sa.text(f"SET LOCAL ROLE {SYSTEM_ROLE}")


def scope_to_system(conn: Connection) -> None:
    """Make the rest of ``conn``'s transaction see every tenant (the system role bypasses RLS)."""
    conn.execute(_AS_SYSTEM)


def scope_to_tenant(conn: Connection, org_id: uuid.UUID) -> None:
    """Make the rest of ``conn``'s transaction see only ``org_id``'s rows (the app role, RLS on)."""
    conn.execute(_AS_APP)
    conn.execute(_SET_ORG, {"org": str(org_id)})


async def scope_to_system_async(conn: AsyncConnection) -> None:
    """:func:`scope_to_system` for an async connection."""
    await conn.execute(_AS_SYSTEM)


async def scope_to_tenant_async(conn: AsyncConnection, org_id: uuid.UUID) -> None:
    """:func:`scope_to_tenant` for an async connection."""
    await conn.execute(_AS_APP)
    await conn.execute(_SET_ORG, {"org": str(org_id)})


@contextmanager
def system_role(conn: Connection) -> Iterator[Connection]:
    """Run an autocommit connection as the system role for a block, then give the role back.

    For a connection that commits each statement on its own (no transaction to scope a ``SET
    LOCAL`` to): the role is set for the session and reset after, and a connection that cannot
    be reset is invalidated so it never returns to the pool with the system role.
    """
    conn.execute(sa.text(f"SET ROLE {SYSTEM_ROLE}"))
    try:
        yield conn
    finally:
        try:
            conn.execute(sa.text("RESET ROLE"))
        except Exception:  # a broken connection must not go back to the pool with our role
            conn.invalidate()


def make_async_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Create the process's async engine (services)."""
    return create_async_engine(
        normalize_database_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """Create the process's sync engine (workers, ticker, CLI)."""
    return sa.create_engine(
        normalize_database_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


class Database:
    """An async engine and the two kinds of session a service opens on it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 10) -> Database:
        """Create a database handle with its own engine."""
        return cls(make_async_engine(url, pool_size=pool_size))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    @asynccontextmanager
    async def tenant(self, org_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
        """Open one transaction scoped to ``org_id``; commit on success, roll back on error."""
        async with self._sessions() as session, session.begin():
            await scope_to_tenant_async(await session.connection(), org_id)
            yield session

    @asynccontextmanager
    async def system(self) -> AsyncIterator[AsyncSession]:
        """Open one transaction that sees every tenant (pre-auth flows, system work)."""
        async with self._sessions() as session, session.begin():
            await scope_to_system_async(await session.connection())
            yield session

    async def ping(self) -> None:
        """Raise if PostgreSQL does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))


@contextmanager
def system_session(engine: Engine) -> Iterator[Session]:
    """Open one synchronous system transaction (workers, ticker); commit on success."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        scope_to_system(session.connection())
        yield session


@contextmanager
def tenant_session(engine: Engine, org_id: uuid.UUID) -> Iterator[Session]:
    """Open one synchronous transaction scoped to ``org_id``; commit on success."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        scope_to_tenant(session.connection(), org_id)
        yield session
