"""Cursor pagination: opaque cursors over ``(created_at, id)``, bounded page sizes."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from litestar.params import Parameter
from pydantic import BaseModel

from libs.errors import Invalid

T = TypeVar("T")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Page size (1-200).")]
Cursor = Annotated[str | None, Parameter(max_length=200, description="Opaque cursor from `next_cursor`.")]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """Encode the position after the row ``(created_at, row_id)``."""
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """Decode a cursor; raise :class:`Invalid` naming the ``cursor`` field when it is not ours."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), uuid.UUID(row_id)
    except (ValueError, TypeError) as exc:
        raise Invalid(errors=[{"field": "cursor", "message": "not a valid cursor", "source": "query"}]) from exc


def keyset(model: Any, cursor: str | None) -> Any | None:
    """Return the SQL condition for rows after ``cursor`` (newest first), or None."""
    position = decode_cursor(cursor)
    if position is None:
        return None
    from sqlalchemy import tuple_

    return tuple_(model.created_at, model.id) < tuple_(*position)


def make_page(rows: Sequence[Any], limit: int, to_item: Callable[[Any], T]) -> Page[T]:
    """Build a page from ``limit + 1`` rows fetched newest first."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return Page[T](items=[to_item(r) for r in rows], next_cursor=next_cursor)
