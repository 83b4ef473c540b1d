"""The audit row of a classification: what was decided, by whom, at what cost."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Session

from libs.db.models.inbound import ReplyClassificationRecord
from libs.replies.classify import Classified


def record_classification(
    session: Session | AsyncSession,
    *,
    org_id: uuid.UUID,
    inbound_event_id: uuid.UUID,
    classified: Classified,
    message_id: uuid.UUID | None = None,
) -> ReplyClassificationRecord:
    """Add the audit row of ``classified`` to ``session`` (written with the caller's transaction)."""
    result, usage = classified.result, classified.usage
    row = ReplyClassificationRecord(
        org_id=org_id,
        inbound_event_id=inbound_event_id,
        message_id=message_id,
        intent=result.intent.value,
        confidence=Decimal(str(round(result.confidence, 3))),
        source=result.source,
        fields=result.fields.model_dump(mode="json", exclude_none=True),
        matched=result.matched,
        fallback_reason=result.fallback_reason,
        prompt_version=usage.prompt_version,
        model=usage.model[:100],
        tokens_in=usage.tokens_in,
        tokens_out=usage.tokens_out,
        cost_usd=Decimal(str(usage.cost_usd)),
        latency_ms=usage.latency_ms,
    )
    session.add(row)
    return row


__all__ = ["record_classification"]
