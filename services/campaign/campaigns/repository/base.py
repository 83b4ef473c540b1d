"""What every repository of the campaigns box shares: the tenant session and the statements' helpers."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.base import utcnow
from libs.suppression import LEADS, suppressed_clause

SKIPPED_EXAMPLES = 100


@dataclass(frozen=True, slots=True)
class LeadRow:
    """The lead columns campaigns read (the leads box owns the table)."""

    id: uuid.UUID
    email_normalized: str | None
    phone: str | None
    timezone: str | None
    status: str
    consent_sms_at: datetime | None
    consent_voice_at: datetime | None


@dataclass(frozen=True, slots=True)
class EnrollOutcome:
    """Counts of one set-based enrollment."""

    enrolled: int
    skipped: dict[str, int]
    examples: list[tuple[uuid.UUID, str]]


LEADS_L = LEADS.alias("l")
"""The leads table as ``l``: the alias every raw statement here reads leads through."""
_DIALECT = postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]
_CAST = re.compile(r":(\w+)::([A-Z][A-Z_]*(?: VARYING| PRECISION)?(?:\(\d+\))?(?:\[\])?)")


def suppressed_sql(org_id: uuid.UUID, channels: Iterable[str], key: bytes, prefix: str) -> tuple[str, dict[str, Any]]:
    """SQL (over ``leads l``) true when the lead is suppressed on any of ``channels``, with its parameters.

    The condition is ``libs.suppression.suppressed_clause``, the one the worker checks at send
    time, compiled here so it can sit inside the set-based enrollment statement.
    """
    clause = sa.or_(*(suppressed_clause(org_id=org_id, channel=c, key=key, leads=LEADS_L) for c in sorted(channels)))
    compiled = clause.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    # sa.text reads ":name::TYPE" as no bind at all; spell the driver's casts as CAST(:name AS TYPE).
    sql = _CAST.sub(r"CAST(:\1 AS \2)", str(compiled))
    params: dict[str, Any] = {}
    for name in sorted(compiled.params, key=len, reverse=True):
        sql = sql.replace(f":{name}", f":{prefix}{name}")
        params[f"{prefix}{name}"] = compiled.params[name]
    return sql, params


class TenantRepository:
    """One organization's rows on the request's transaction; every query filters by ``org_id``."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, *, suppression_key: bytes = b"") -> None:
        self.session = session
        self.org_id = org_id
        self.suppression_key = suppression_key

    async def _sql(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        """Flush pending ORM changes, then run a Core statement on the transaction's connection."""
        await self.session.flush()
        conn = await self.session.connection()
        return await conn.execute(statement, params or {})

    async def add(self, row: Any) -> None:
        """Stage a new row and flush it."""
        self.session.add(row)
        await self.session.flush()

    async def delete(self, row: Any) -> None:
        """Delete a row."""
        await self.session.delete(row)
        await self.session.flush()


def touch(row: Any) -> None:
    """Set ``updated_at`` (and bump ``version`` where there is one)."""
    row.updated_at = utcnow()
    if hasattr(row, "version"):
        row.version += 1
