"""What an inbound event keeps when it is about an erased person: ids, provider ids, enums; never their data.

A reply, a bounce, a Twilio callback or a text may arrive after its lead was erased
(``DELETE /api/leads/{id}``). It is recognised by its message's lead (``leads.erased_at``)
or by its sender's or recipient's address or number, whose HMAC (``libs.suppression``) an
erasure keeps on the suppression list. Such an event is stored as the erasure would have
left it (:mod:`services.campaign.leads.erasure`): no raw payload, no body, no address, an
email dedupe key hashed to ``erased:<sha256>``, and ``"erased": true``. Only what the law
and the ledger need is acted on: the message's delivery state moves, a STOP gets its one
confirmation (the erasure's hash suppression, on every channel, already keeps the number
from being contacted), and nothing is owed to customer webhooks.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from libs.suppression import InvalidContact, contact_hash, normalize_email, normalize_phone
from services.campaign.inbound import repository as repo
from services.campaign.leads.erasure import EVENT_KEYS

ERASED = "erased"
"""The marker key of a tombstoned payload, and the outcome of an event that was about an erased person."""

TWILIO_KEPT = (
    "AccountSid",
    "MessageSid",
    "SmsSid",
    "CallSid",
    "MessageStatus",
    "SmsStatus",
    "CallStatus",
    "ErrorCode",
    "AnsweredBy",
)
"""Twilio parameters that name only accounts, provider ids and states (never ``From``, ``To`` or ``Body``)."""

TWILIO_NUMBERS = ("From", "To", "Caller", "Called")
"""Twilio parameters that hold a phone number: the person's on one side of every callback."""


def hashed_key(dedupe_key: str) -> str:
    """An email dedupe key as an erasure leaves it (``erased:<sha256>``): still unique, no longer readable.

    The hash is of the key as stored (its first 255 characters), as the erasure's SQL computes
    it, so an email that came before the erasure is still recognised when it comes again.
    """
    if dedupe_key.startswith(f"{ERASED}:"):
        return dedupe_key
    return f"{ERASED}:{hashlib.sha256(dedupe_key[:255].encode()).hexdigest()}"


def event_data(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """``message_events.data`` cut down to the keys an erasure keeps, marked erased."""
    return {**{k: v for k, v in (data or {}).items() if k in EVENT_KEYS}, ERASED: True}


def twilio_payload(params: Mapping[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
    """A Twilio callback's stored payload without the numbers and text: the ids and states the job needs."""
    kept_query: dict[str, str] = {}
    hinted = query.get("message_id")
    if hinted:
        with contextlib.suppress(ValueError):
            kept_query["message_id"] = str(uuid.UUID(hinted))
    return {"params": {k: params[k] for k in TWILIO_KEPT if k in params}, "query": kept_query, ERASED: True}


def email_payload(kind: str, status: str | None) -> dict[str, Any]:
    """An email's stored payload without subject, addresses or text: what kind it is and its DSN status code."""
    return {"kind": kind, "status": status, ERASED: True}


def _hashes(key: bytes, *, emails: Iterable[str | None] = (), phones: Iterable[str | None] = ()) -> list[str]:
    found: list[str] = []
    for kind, values, normalize in (("email", emails, normalize_email), ("phone", phones, normalize_phone)):
        for value in values:
            if not value or not value.strip():
                continue
            try:
                found.append(contact_hash(key, kind, normalize(value)))
            except InvalidContact:
                continue
    return found


def erased_contact(
    session: Session,
    key: bytes,
    *,
    org_id: uuid.UUID,
    emails: Iterable[str | None] = (),
    phones: Iterable[str | None] = (),
) -> bool:
    """Whether one of these addresses or numbers belongs to a person erased from ``org_id``."""
    return repo.erasure_hash_exists(session, org_id=org_id, hashes=_hashes(key, emails=emails, phones=phones))


def twilio_erased(
    session: Session,
    key: bytes,
    *,
    org_id: uuid.UUID,
    params: Mapping[str, str | None],
    query: Mapping[str, str],
    channels: tuple[str, ...] | None,
) -> bool:
    """Whether a Twilio callback or text is about an erased person (its message's lead, or a number it names).

    ``channels`` are the ledger channels its sid may name (``None``: an inbound text, which names no message).
    """
    if channels is not None:
        sid = params.get("CallSid") or params.get("MessageSid") or params.get("SmsSid")
        hinted: uuid.UUID | None = None
        try:
            hinted = uuid.UUID(query.get("message_id") or "")
        except ValueError:
            hinted = None
        if repo.erased_recipient(session, org_id=org_id, channels=channels, provider_id=sid, message_id=hinted):
            return True
    return erased_contact(session, key, org_id=org_id, phones=[params.get(name) for name in TWILIO_NUMBERS])


def email_erased(
    session: Session,
    key: bytes,
    *,
    org_id: uuid.UUID,
    lead_id: uuid.UUID,
    addresses: Iterable[str | None],
) -> bool:
    """Whether an email is about an erased person: its message's lead, or its sender or bounced recipient."""
    if repo.lead_erased(session, org_id=org_id, lead_id=lead_id):
        return True
    return erased_contact(session, key, org_id=org_id, emails=addresses)
