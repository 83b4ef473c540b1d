"""One signed Twilio request: who signed it, and its event stored once (without personal data when erased)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session

from libs.errors import Forbidden
from services.campaign.inbound import erased
from services.campaign.inbound import repository as repo
from services.campaign.inbound.events import Context
from services.campaign.inbound.twilio.signature import FormParams, find_signing_org

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TwilioHook:
    """A Twilio request as its controller read it: the form, the query, and what the signature covers."""

    params: FormParams
    query: Mapping[str, str]
    url: str
    """The public URL Twilio called (:func:`signature.public_url`)."""
    path: str
    signature: str
    settings_header: str | None = None
    idempotency_token: str | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """A Twilio request's event: its id (``None``: a duplicate) and whether it is about an erased person."""

    org_id: uuid.UUID
    event_id: uuid.UUID | None
    erased: bool


def signing_org(session: Session, ctx: Context, hook: TwilioHook) -> uuid.UUID:
    """The organization whose stored Auth Token signed ``hook``; :class:`Forbidden` when none did."""
    account_sid = hook.params.first("AccountSid") or ""
    if not account_sid or not hook.signature:
        raise Forbidden("The request is not signed by Twilio.")
    org_id: uuid.UUID | None = find_signing_org(
        repo.twilio_credentials(session, account_sid),
        box=ctx.box,
        url=hook.url,
        params=hook.params,
        signature=hook.signature,
        settings_header=hook.settings_header,
    )
    if org_id is None:
        log.warning("twilio_signature_invalid", path=hook.path)
        raise Forbidden("The Twilio signature does not match this request.")
    return org_id


def store(
    session: Session,
    ctx: Context,
    hook: TwilioHook,
    *,
    org_id: uuid.UUID,
    source: str,
    dedupe_key: str,
    channels: tuple[str, ...] | None,
) -> Stored:
    """Store the request once as an inbound event; about an erased person, with ids and states only.

    ``channels`` are the ledger channels its sid may name (``None``: an inbound text, which names no message).
    """
    params = hook.params.flat()
    first = {name: hook.params.first(name) for name in hook.params}
    is_erased = erased.twilio_erased(
        session, ctx.suppression_key, org_id=org_id, params=first, query=hook.query, channels=channels
    )
    payload = erased.twilio_payload(params, hook.query) if is_erased else {"params": params, "query": dict(hook.query)}
    event_id = repo.insert_event(
        session,
        org_id=org_id,
        source=source,
        dedupe_key=dedupe_key,
        payload=payload,
        idempotency_token=hook.idempotency_token,
    )
    return Stored(org_id=org_id, event_id=event_id, erased=is_erased)
