"""Review mode's decisions on messages awaiting review: approve (content kept or edited), reject, expire.

A campaign in review mode has the worker put written messages aside (``awaiting_review``, the
:data:`~libs.ledger.messages.REVIEW` statement). A person approves one (:data:`APPROVE`: back to
``queued`` and due, so the ticker hands it to the worker, which sends exactly the approved
content once) or rejects it (:data:`REJECT`: ``skipped``, never sent, the enrollment moved on by
:func:`~libs.ledger.resolution.next_step` as after any skip). A message whose review deadline
passed is skipped (``review_expired``) or approved by the deadline itself (``reviewed_by`` None),
as its campaign says. Every statement moves a message only from ``awaiting_review``, so of two
decisions on one message exactly one wins.

Plain SQLAlchemy Core, so the campaign service (async) and the ticker (sync) run the same SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from libs.ledger.messages import APPROVE, REJECT
from libs.ledger.resolution import LOAD, next_step

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from sqlmodel.ext.asyncio.session import AsyncSession

REJECTED = "review_rejected"
"""``hold_reason`` of a message a reviewer rejected (the reviewer's reason is in ``review_note``)."""
EXPIRED = "review_expired"
"""``hold_reason`` of a message skipped because its review deadline passed."""
DEADLINE_APPROVED = "approved at the review deadline"
"""``review_note`` of a message its campaign sends when the review deadline passes."""


@dataclass(frozen=True, slots=True)
class Approval:
    """One message to approve with the content that goes out (``subject`` None outside email)."""

    message_id: uuid.UUID
    subject: str | None
    body: str


def approve_params(
    approvals: Sequence[Approval], *, by: uuid.UUID | None, note: str | None, now: datetime
) -> dict[str, Any]:
    """The parameters of :data:`APPROVE` for ``approvals``."""
    return {
        "ids": [a.message_id for a in approvals],
        "subjects": [a.subject for a in approvals],
        "bodies": [a.body for a in approvals],
        "by": by,
        "note": note,
        "now": now,
    }


def reject_params(
    rows: Sequence[Any], *, reason: str, note: str | None, by: uuid.UUID | None, now: datetime
) -> dict[str, Any]:
    """The parameters of :data:`REJECT` for ``rows`` (:data:`~libs.ledger.resolution.LOAD`'s, the next step's facts)."""
    planned = [(row, *next_step(row, now)) for row in rows]
    return {
        "ids": [row.id for row, _, _ in planned],
        "actions": [action for _, action, _ in planned],
        "positions": [row.position for row, _, _ in planned],
        "due": [due for _, _, due in planned],
        "reason": reason,
        "note": note,
        "by": by,
        "now": now,
    }


def approve_sync(session: Session, approvals: Sequence[Approval], *, by: uuid.UUID | None, note: str | None,
                 now: datetime) -> list[tuple[uuid.UUID, str]]:  # fmt: skip
    """Approve in a sync session; return ``(id, channel)`` of each message this approval moved."""
    if not approvals:
        return []
    rows = session.connection().execute(APPROVE, approve_params(approvals, by=by, note=note, now=now))
    return [(r.id, r.channel) for r in rows]


async def approve(session: AsyncSession, approvals: Sequence[Approval], *, by: uuid.UUID | None, note: str | None,
                  now: datetime) -> list[tuple[uuid.UUID, str]]:  # fmt: skip
    """Async :func:`approve_sync`."""
    if not approvals:
        return []
    conn = await session.connection()
    rows = await conn.execute(APPROVE, approve_params(approvals, by=by, note=note, now=now))
    return [(r.id, r.channel) for r in rows]


def reject_sync(session: Session, ids: Sequence[uuid.UUID], *, reason: str, note: str | None, by: uuid.UUID | None,
                now: datetime) -> list[uuid.UUID]:  # fmt: skip
    """Skip messages awaiting review and move their enrollments on; return the ids this call moved."""
    if not ids:
        return []
    conn = session.connection()
    rows = conn.execute(LOAD, {"ids": list(ids)}).all()
    return [r.id for r in conn.execute(REJECT, reject_params(rows, reason=reason, note=note, by=by, now=now))]


async def reject(session: AsyncSession, ids: Sequence[uuid.UUID], *, reason: str, note: str | None,
                 by: uuid.UUID | None, now: datetime) -> list[uuid.UUID]:  # fmt: skip
    """Async :func:`reject_sync`."""
    if not ids:
        return []
    conn = await session.connection()
    rows = (await conn.execute(LOAD, {"ids": list(ids)})).all()
    return [r.id for r in await conn.execute(REJECT, reject_params(rows, reason=reason, note=note, by=by, now=now))]
