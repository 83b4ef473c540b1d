"""Every statement of a lead's erasure: the copies of its personal data outside ``leads``, in set-based SQL.

A lead's data is copied wherever the system works with it: the ledger (``messages``: rendered
subject and body, provider error text), its events (``message_events.data``: reply text, bounce
diagnostics, clicked URLs), the worker's personalization audit (``personalizations``: prompt,
input, model output, frozen content), what came back (``inbound_events``: Twilio parameters,
raw MIME), tracked links (``message_links``), customer webhook payloads and the receivers'
answers (``webhook_deliveries``, ``webhook_attempts``), rejected import rows
(``lead_import_rejections``) and clear-text suppressions (``suppressions``).

Ledger rows are tombstoned, not deleted: ids, statuses, channels, timestamps and counters stay
so aggregate statistics do not change; text is nulled and JSON is cut down to a short list of
keys that hold only ids, enums and numbers, plus ``"erased": true``. Links and rejected rows,
which are nothing but personal text, are deleted. Every statement filters by organization
(row-level security is the second lock) and all of them run in the caller's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers
import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.ledger import enrollments as ledger_enrollments
from libs.ledger import messages as ledger_messages
from libs.ledger import states
from services.campaign.leads.repository import execute

ERASED_REASON = "erased"
"""``enrollments.stopped_reason`` and ``messages.hold_reason`` of what an erasure stopped."""
UNSENT = states.UNSENT
"""Ledger states nobody has handed to a provider yet: an erasure skips them."""
EVENT_KEYS = ("channel", "scope", "one_click", "position", "hard", "provider_id", "code", "reason", "until")
"""``message_events.data`` keys kept on a tombstone (ids, enums, numbers, times: never text from or about a person)."""
INBOUND_KEYS = ("kind", "one_click", "position")
"""``inbound_events.payload`` keys kept on a tombstone."""
WEBHOOK_KEYS = ("lead_id", "message_id", "campaign_id", "channel")
"""Keys of a webhook payload's ``data`` kept on a tombstone."""


@dataclass(frozen=True, slots=True)
class Contact:
    """What identified the person before erasure: used once to find copies not linked to the lead by id."""

    email: str | None
    phone: str | None

    @property
    def email_pattern(self) -> str | None:
        """A ``LIKE`` pattern matching the lower-case address anywhere in a text."""
        return f"%{_escape(self.email.lower())}%" if self.email else None

    @property
    def phone_digits(self) -> list[str]:
        """The number as digit strings a cell may hold once its punctuation is removed (E.164 and national)."""
        if not self.phone:
            return []
        digits = [self.phone.lstrip("+")]
        try:
            national = str(phonenumbers.parse(self.phone).national_number)
        except phonenumbers.NumberParseException:
            national = ""
        if len(national) >= 6 and national not in digits:
            digits.append(national)
        return digits

    @property
    def phone_pattern(self) -> str | None:
        """A ``LIKE`` pattern matching the E.164 digits anywhere in a text."""
        return f"%{self.phone.lstrip('+')}%" if self.phone else None


@dataclass
class Erased:
    """How many rows of each table an erasure touched (the audit line's numbers; never their content)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, result: Any) -> None:
        """Record the row count of ``result`` under ``name``."""
        self.counts[name] = self.counts.get(name, 0) + int(result.rowcount or 0)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _kept(column: str, keys_param: str) -> str:
    """SQL for the JSON object ``column`` cut down to the keys in ``:keys_param``, marked erased."""
    # Only constants of this module are interpolated; values are bound.
    return (
        f"COALESCE((SELECT jsonb_object_agg(k, v) FROM jsonb_each("  # noqa: S608
        f"CASE WHEN jsonb_typeof({column}) = 'object' THEN {column} ELSE '{{}}'::jsonb END) AS e(k, v) "
        f"WHERE k = ANY(CAST(:{keys_param} AS text[]))), '{{}}'::jsonb) || '{{\"erased\": true}}'::jsonb"
    )


LEAD_MESSAGES = "SELECT id FROM messages WHERE org_id = :org AND lead_id = :lead"

TOMBSTONE_MESSAGES = ledger_messages.TOMBSTONE
"""Skip what has not gone (no claim can take a ``skipped`` row) and null the text of every message."""

TOMBSTONE_EVENTS = sa.text(
    f"""
    UPDATE message_events SET data = {_kept("data", "event_keys")}
    WHERE org_id = :org AND lead_id = :lead
    """  # noqa: S608 - only the constant SQL of _kept() is interpolated
)

CLEAR_PERSONALIZATIONS = sa.text(
    f"""
    UPDATE personalizations
    SET prompt = '[]'::jsonb, input = '{{}}'::jsonb, output = NULL, content = '{{}}'::jsonb
    WHERE org_id = :org
      AND (message_id IN ({LEAD_MESSAGES})
           OR enrollment_id IN (SELECT id FROM enrollments WHERE org_id = :org AND lead_id = :lead))
    """  # noqa: S608 - only constant SQL is interpolated
)

DELETE_LINKS = sa.text(f"DELETE FROM message_links WHERE org_id = :org AND message_id IN ({LEAD_MESSAGES})")  # noqa: S608

TOMBSTONE_INBOUND = sa.text(
    f"""
    UPDATE inbound_events
    SET payload = {_kept("payload", "inbound_keys")}, raw = NULL, error = NULL,
        dedupe_key = CASE WHEN source = 'email' AND dedupe_key NOT LIKE 'erased:%'
                          THEN 'erased:' || encode(sha256(convert_to(dedupe_key, 'UTF8')), 'hex')
                          ELSE dedupe_key END
    WHERE org_id = :org
      AND (lead_id = :lead
           OR message_id IN ({LEAD_MESSAGES})
           OR (source IN ('twilio_sms', 'twilio_message_status', 'twilio_call_status', 'email')
               AND (lower(payload::text) LIKE CAST(:email_pattern AS text)
                    OR payload::text LIKE CAST(:phone_pattern AS text)
                    OR (raw IS NOT NULL AND lower(encode(raw, 'escape')) LIKE CAST(:email_pattern AS text)))))
    """  # noqa: S608 - only constant SQL is interpolated
)
"""Callbacks, texts and emails of the lead, and any other that carries its address or number.

An email's dedupe key holds the sender's Message-ID, which mail clients may build from the
address: it becomes its SHA-256 (still unique). Twilio keys are provider ids and stay. Only
the sources that carry contact data are searched by value (opens, clicks and unsubscribes
hold ids only, and are the bulk of the table). The patterns are NULL (match nothing) on a
repeated erasure, when the contact is gone.
"""

LEAD_EVENTS = "SELECT id FROM message_events WHERE org_id = :org AND lead_id = :lead"

TOMBSTONE_DELIVERIES = sa.text(
    f"""
    UPDATE webhook_deliveries
    SET payload = jsonb_set(
            CASE WHEN jsonb_typeof(payload) = 'object' THEN payload ELSE '{{}}'::jsonb END,
            '{{data}}', {_kept("payload -> 'data'", "webhook_keys")}),
        last_error = NULL
    WHERE org_id = :org
      AND (event_id IN ({LEAD_EVENTS}) OR payload -> 'data' ->> 'lead_id' = CAST(:lead AS text))
    """  # noqa: S608 - only constant SQL is interpolated
)
"""Customer webhook payloads about the lead keep their ids and event type, not the text."""

CLEAR_ATTEMPTS = sa.text(
    f"""
    UPDATE webhook_attempts SET response_excerpt = NULL, error = NULL
    WHERE org_id = :org AND delivery_id IN (
        SELECT id FROM webhook_deliveries
        WHERE org_id = :org
          AND (event_id IN ({LEAD_EVENTS}) OR payload -> 'data' ->> 'lead_id' = CAST(:lead AS text))
    )
    """  # noqa: S608 - only constant SQL is interpolated
)
"""A receiver may echo the payload back: its answers about the lead go too."""

DELETE_REJECTIONS = sa.text(
    """
    DELETE FROM lead_import_rejections r
    WHERE r.org_id = :org AND EXISTS (
        SELECT 1 FROM jsonb_array_elements_text(
            CASE WHEN jsonb_typeof(r.cells) = 'array' THEN r.cells ELSE '[]'::jsonb END) AS c(cell)
        WHERE lower(c.cell) LIKE CAST(:email_pattern AS text)
           OR regexp_replace(c.cell, '[^0-9]', '', 'g') = ANY(CAST(:digits AS text[]))
    )
    """
)
"""Rejected import rows holding the address anywhere in a cell, or the number in any punctuation."""

DELETE_CLEAR_SUPPRESSIONS = sa.text(
    """
    DELETE FROM suppressions
    WHERE org_id = :org
      AND ((kind = 'email' AND value = :email) OR (kind = 'phone' AND value = :phone))
    """
)
"""Clear-text entries of the person; the erasure hashes (every channel) cover them from now on."""


class ErasureRepository:
    """The statements that remove one lead's copies of personal data, in one organization."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def erase_copies(self, lead_id: uuid.UUID, contact: Contact | None, *, now: datetime) -> Erased:
        """Stop the lead's sequences and tombstone or delete every copy of its data; return the row counts.

        Runs in the caller's transaction, so the erasure is all or nothing. ``contact`` (the
        email and phone before erasure; None when erasing again) also finds the copies not
        linked by id: inbound events from an unmatched sender, rejected import rows and
        clear-text suppressions.

        ``personalizations`` belongs to the worker; clearing its text columns from here is
        the documented data-protection duty of an erasure (GDPR Art. 17), which must reach
        every copy in the shared database in the same transaction. Only the text columns
        change; ids, model, source, tokens, cost and latency stay for usage statistics.
        """
        base: dict[str, Any] = {"org": self.org_id, "lead": lead_id}
        email_pattern = contact.email_pattern if contact else None
        phone_pattern = contact.phone_pattern if contact else None
        out = Erased()
        stop = ledger_enrollments.stop_leads(org_id=self.org_id, lead_ids=[lead_id], reason=ERASED_REASON, now=now)
        out.counts["enrollments"] = len((await execute(self.session, stop)).all())
        row = (await self._run(TOMBSTONE_MESSAGES, reason=ERASED_REASON, now=now, **base)).one()
        out.counts["messages"], out.counts["messages_skipped"] = int(row.tombstoned), int(row.skipped)
        out.add("message_events", await self._run(TOMBSTONE_EVENTS, event_keys=list(EVENT_KEYS), **base))
        out.add("personalizations", await self._run(CLEAR_PERSONALIZATIONS, **base))
        out.add("message_links", await self._run(DELETE_LINKS, **base))
        out.add(
            "inbound_events",
            await self._run(
                TOMBSTONE_INBOUND,
                inbound_keys=list(INBOUND_KEYS),
                email_pattern=email_pattern,
                phone_pattern=phone_pattern,
                **base,
            ),
        )
        out.add("webhook_attempts", await self._run(CLEAR_ATTEMPTS, **base))
        out.add("webhook_deliveries", await self._run(TOMBSTONE_DELIVERIES, webhook_keys=list(WEBHOOK_KEYS), **base))
        if contact is not None:
            out.add(
                "lead_import_rejections",
                await self._run(
                    DELETE_REJECTIONS, org=self.org_id, email_pattern=email_pattern, digits=contact.phone_digits
                ),
            )
            out.add(
                "suppressions",
                await self._run(DELETE_CLEAR_SUPPRESSIONS, org=self.org_id, email=contact.email, phone=contact.phone),
            )
        return out

    async def _run(self, statement: sa.TextClause, **params: Any) -> Any:
        return await execute(self.session, statement.bindparams(**params))
