"""Review mode in the send job: which messages wait for a person, and the approved content that goes out.

A campaign's ``review_mode`` says which of its messages a person approves before they may be
sent: none (``off``), the first ``review_first_n`` of each step, or ``all``. Once the gate lets a
message through and its content is written and frozen, a message that needs review is put aside
(``awaiting_review``, with its content and deadline, by one ``REVIEW`` statement for the batch)
instead of being claimed; it takes no send cap. A message a person (or the deadline) approved
carries ``reviewed_at``: it is never put aside again, the gate still decides on it as on any
other, and exactly the approved content goes out.

For ``first_n`` a step's count is its messages awaiting review or reviewed; two batches of one
step running at once may each see the count below ``n`` and put aside one more than ``n``
(never fewer).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from sqlmodel import Session

from libs.db.models.campaign import ReviewMode
from libs.ledger.messages import REVIEW
from services.worker.ledger import LoadedRow

log = structlog.get_logger(__name__)

FACTS = sa.text(
    """
    SELECT m.id, m.reviewed_at, m.subject, m.body,
           c.review_mode, c.review_first_n, c.review_deadline_hours
    FROM messages m JOIN campaigns c ON c.id = m.campaign_id
    WHERE m.id = ANY(CAST(:ids AS uuid[]))
    """
)
"""Each message's review facts: approved yet (and with what content), and its campaign's review setting."""

REVIEWED_OF_STEPS = sa.text(
    """
    SELECT s.campaign_id, s.step_id, count(m.id) AS reviewed
    FROM unnest(CAST(:campaigns AS uuid[]), CAST(:steps AS uuid[])) AS s(campaign_id, step_id)
    JOIN messages m ON m.campaign_id = s.campaign_id AND m.step_id = s.step_id
                   AND (m.status = 'awaiting_review' OR m.reviewed_at IS NOT NULL)
    GROUP BY s.campaign_id, s.step_id
    """
)
"""How many messages of each step went to review already (awaiting or decided)."""


@dataclass
class Plan:
    """A batch's review decisions: the rows to put aside and the approved content of the others."""

    needs: dict[uuid.UUID, datetime | None] = field(default_factory=dict)
    """Messages to put aside, with their review deadline (None: no deadline)."""
    approved: dict[uuid.UUID, dict[str, str]] = field(default_factory=dict)
    """Approved messages' content, as the channel's draft holds it."""


def plan(session: Session, rows: Sequence[LoadedRow], now: datetime) -> Plan:
    """Decide which of the sendable ``rows`` need review, and read the approved ones' content."""
    result = Plan()
    if not rows:
        return result
    facts = {f.id: f for f in session.execute(FACTS, {"ids": [r.id for r in rows]})}
    counted: dict[uuid.UUID, int] = {}
    first_n = [r for r in rows if r.id in facts and facts[r.id].review_mode == ReviewMode.FIRST_N]
    if first_n:
        steps = sorted({(r.campaign_id, r.step_id) for r in first_n})
        params = {"campaigns": [c for c, _ in steps], "steps": [s for _, s in steps]}
        counted = {r.step_id: r.reviewed for r in session.execute(REVIEWED_OF_STEPS, params)}
    for row in rows:
        fact = facts.get(row.id)
        if fact is None:
            continue
        if fact.reviewed_at is not None:
            result.approved[row.id] = content(row.channel, fact.subject, fact.body)
            continue
        if fact.review_mode == ReviewMode.FIRST_N:
            if counted.get(row.step_id, 0) >= fact.review_first_n:
                continue
            counted[row.step_id] = counted.get(row.step_id, 0) + 1
        elif fact.review_mode != ReviewMode.ALL:
            continue
        hours = fact.review_deadline_hours
        result.needs[row.id] = now + timedelta(hours=hours) if hours else None
    return result


def content(channel: str, subject: str | None, body: str | None) -> dict[str, str]:
    """A message's stored text as a draft's content on its channel."""
    if channel == "email":
        return {"subject": subject or "", "body": body or ""}
    return {"text" if channel == "sms" else "script": body or ""}


def put_aside(session: Session, aside: Sequence[tuple[LoadedRow, dict[str, str], datetime | None]], now: datetime
              ) -> set[uuid.UUID]:  # fmt: skip
    """Write ``awaiting_review`` with the content and deadline of each; return the ids that moved."""
    if not aside:
        return set()
    params = {
        "ids": [row.id for row, _, _ in aside],
        "subjects": [text.get("subject") for _, text, _ in aside],
        "bodies": [text.get("body") or text.get("text") or text.get("script") or "" for _, text, _ in aside],
        "deadlines": [deadline for _, _, deadline in aside],
        "now": now,
    }
    moved = {r.id for r in session.execute(REVIEW, params)}
    for row, _, deadline in aside:
        if row.id in moved:
            log.info("message_awaiting_review", message_id=str(row.id), deadline=str(deadline))
    return moved
