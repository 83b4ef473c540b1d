"""The schema: migrations match the models, and row-level security is the second lock."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel, select

import libs.db.models  # noqa: F401
from libs.db.models import Organization
from libs.db.session import Database, make_engine, system_session, tenant_session


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    engine.dispose()
    assert diff == []


def test_tenant_session_sees_only_its_organization(database_url: str) -> None:
    engine = make_engine(database_url)
    a, b = uuid.uuid4(), uuid.uuid4()
    with system_session(engine) as s:
        s.add(Organization(id=a, name="A"))
        s.add(Organization(id=b, name="B"))
    with tenant_session(engine, a) as s:
        # No filter on purpose: row-level security must still hide B.
        names = s.exec(select(Organization.name)).all()
    engine.dispose()
    assert names == ["A"]


def test_tenant_session_cannot_write_into_another_organization(database_url: str) -> None:
    engine = make_engine(database_url)
    with tenant_session(engine, uuid.uuid4()) as s:
        s.add(Organization(id=uuid.uuid4(), name="intruder"))
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
            s.flush()
        s.rollback()
    engine.dispose()


def test_session_without_organization_sees_nothing(database_url: str) -> None:
    engine = make_engine(database_url)
    with system_session(engine) as s:
        s.add(Organization(name="A"))
    with engine.connect() as conn:
        conn.exec_driver_sql("SET ROLE tidewater_app")
        count = conn.execute(sa.text("SELECT count(*) FROM organizations")).scalar_one()
    engine.dispose()
    assert count == 0


async def test_async_tenant_session_scopes_reads(database_url: str) -> None:
    db = Database.from_url(database_url)
    a = uuid.uuid4()
    async with db.system() as s:
        s.add(Organization(id=a, name="A"))
        s.add(Organization(name="B"))
    async with db.tenant(a) as s:
        rows = (await s.exec(select(Organization))).all()
    await db.dispose()
    assert [r.id for r in rows] == [a]
