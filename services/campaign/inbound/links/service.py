"""The links' rules: one entry per route, each recording its event once (:func:`events.record_once`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from libs.db.models.campaign import EventType
from libs.db.models.leads import SuppressionChannel, SuppressionKind, SuppressionReason
from services.campaign.inbound import repository as repo
from services.campaign.inbound.events import (
    Context,
    Effects,
    Opt,
    Stop,
    record_once,
    suppress_lead,
)
from services.campaign.inbound.rows import LeadRow, MessageRow

ON_UNSUBSCRIBE = Stop("unsubscribed", rule="on_unsubscribe", this_campaign=True)
ON_CLICK = Stop("clicked", rule="on_click", rule_default=False, this_campaign=True)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a message went to, as the unsubscribe page names them."""

    email: str
    brand: str
    """The sending brand's name ("" when it is gone)."""


def recipient(session: Session, message_id: uuid.UUID) -> Recipient | None:
    """The address a message went to and its brand's name, or ``None`` when there is no such message."""
    found = repo.recipient(session, message_id=message_id)
    return None if found is None else Recipient(email=found[0], brand=found[1])


def unsubscribe(
    session: Session, ctx: Context, effects: Effects, *, message_id: uuid.UUID, one_click: bool
) -> Recipient | None:
    """Unsubscribe the address a message went to (idempotent); return its recipient, ``None``: no such message."""
    message: MessageRow | None = repo.message_by_id(session, message_id=message_id)
    if message is None:
        return None
    lead: LeadRow | None = repo.lead_by_id(session, org_id=message.org_id, lead_id=message.lead_id)
    why = Opt((SuppressionChannel.EMAIL,), SuppressionReason.UNSUBSCRIBE, f"list-unsubscribe {message.id}")
    suppress_lead(session, ctx, message.org_id, lead, SuppressionKind.EMAIL, why)
    record_once(
        session,
        effects,
        message,
        source="unsubscribe",
        dedupe_key=str(message.id),
        payload={"one_click": one_click},
        type_=EventType.UNSUBSCRIBED,
        outcome="unsubscribed",
        data={"scope": "email", "one_click": one_click},
        stops=ON_UNSUBSCRIBE,
        effective=True,
    )
    return recipient(session, message.id) or Recipient(email="", brand="")


def record_open(session: Session, effects: Effects, *, message_id: uuid.UUID) -> bool:
    """Record the first open of a message; return whether the message exists."""
    message: MessageRow | None = repo.message_by_id(session, message_id=message_id)
    if message is None:
        return False
    record_once(
        session,
        effects,
        message,
        source="open",
        dedupe_key=str(message.id),
        payload={},
        type_=EventType.OPENED,
        outcome="opened",
    )
    return True


def resolve_click(session: Session, effects: Effects, *, message_id: uuid.UUID, position: int) -> str | None:
    """Return the stored URL a click token points at (recording the first click), or ``None``."""
    message: MessageRow | None = repo.message_by_id(session, message_id=message_id)
    if message is None:
        return None
    url = repo.message_link(session, message_id=message.id, position=position)
    if url is None or not url.lower().startswith(("http://", "https://")):
        return None
    record_once(
        session,
        effects,
        message,
        source="click",
        dedupe_key=f"{message.id}:{position}",
        payload={"position": position},
        type_=EventType.CLICKED,
        outcome="clicked",
        data={"url": url, "position": position},
        stops=ON_CLICK,
    )
    return url
