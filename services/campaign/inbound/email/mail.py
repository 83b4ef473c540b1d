"""Read an inbound email (raw MIME) with the stdlib parser: reply, delivery status notification, or auto-reply.

- Replies are matched by ``In-Reply-To`` / ``References`` to the ``Message-ID`` the worker
  sets on every email it sends: ``<{ledger message uuid}@{sender domain}>``.
- RFC 3464 delivery status notifications (``multipart/report; report-type=delivery-status``)
  carry one ``message/delivery-status`` part: a per-message block, then one block per
  recipient with ``Action``, ``Status`` (RFC 3463: ``5.x.x`` permanent, ``4.x.x`` transient),
  ``Final-Recipient`` and ``Diagnostic-Code``; the original message (or its headers) follows,
  and its ``Message-ID`` / ``X-Tidewater-Message`` name our message.
- Auto-replies (RFC 3834 ``Auto-Submitted`` other than ``no``, ``X-Autoreply``,
  ``X-Autorespond``, ``Precedence: auto_reply``, out-of-office subjects) are recorded, never
  counted as replies.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from email import errors as email_errors
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from enum import StrEnum

from libs.optout import reply_text


class MailKind(StrEnum):
    """What an inbound email is."""

    REPLY = "reply"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    AUTO_REPLY = "auto_reply"
    COMPLAINT = "complaint"
    """An abuse report (ARF, RFC 5965) about one of our messages."""
    UNMATCHED = "unmatched"


class MalformedMail(ValueError):
    """The body is not a readable RFC 5322 message; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class InboundMail:
    """What we read from one inbound email."""

    kind: MailKind
    message_ids: list[uuid.UUID] = field(default_factory=list)
    """Our ledger ids it refers to, most specific first."""
    mail_message_id: str | None = None
    sender: str | None = None
    subject: str | None = None
    text: str = ""
    status: str | None = None
    action: str | None = None
    recipient: str | None = None
    diagnostic: str | None = None


_MSGID = re.compile(r"<([^<>@\s]+)@[^<>\s]*>")
_OUT_OF_OFFICE = re.compile(
    r"^\s*(?:auto(?:matic)?[\s-]*(?:reply|response|antwort)|autoreply|out of (?:the )?office|ooo\b|"
    r"abwesenheit|absence|away from (?:the )?office|on vacation|r[ée]ponse automatique|auto:)",
    re.IGNORECASE,
)
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SERIOUS_DEFECTS = (
    email_errors.NoBoundaryInMultipartDefect,
    email_errors.StartBoundaryNotFoundDefect,
    email_errors.MissingHeaderBodySeparatorDefect,
    email_errors.MultipartInvariantViolationDefect,
)
MAX_TEXT = 4000


def parse(raw: bytes) -> EmailMessage:
    """Parse ``raw`` with ``policy.default``; raise :class:`MalformedMail` when it is not an email."""
    if not raw or not raw.strip():
        raise MalformedMail("The body is empty.")
    if b"\x00" in raw:
        raise MalformedMail("The body contains NUL bytes.")
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    except (email_errors.MessageError, ValueError, TypeError, IndexError) as exc:
        raise MalformedMail(f"The message cannot be parsed: {type(exc).__name__}.") from exc
    if not isinstance(msg, EmailMessage) or not msg.keys():
        raise MalformedMail("The body has no header section.")
    if not msg.get("From"):
        raise MalformedMail("The message has no From header.")
    serious = [d for d in _all_defects(msg) if isinstance(d, _SERIOUS_DEFECTS)]
    if serious:
        raise MalformedMail(f"The MIME structure is broken: {type(serious[0]).__name__}.")
    return msg


def _all_defects(msg: EmailMessage) -> list[email_errors.MessageDefect]:
    found = list(msg.defects)
    for part in msg.walk():
        if part is not msg:
            found.extend(part.defects)
    return found


def _header(msg: EmailMessage, name: str) -> str:
    try:
        value = msg.get(name)
    except (email_errors.HeaderParseError, ValueError, IndexError):
        return ""
    return str(value) if value is not None else ""


def our_ids(*values: str) -> list[uuid.UUID]:
    """Ledger ids named by ``<uuid@domain>`` message ids in header values, in order, without repeats."""
    found: list[uuid.UUID] = []
    for value in values:
        for local in _MSGID.findall(value or ""):
            try:
                ident = uuid.UUID(local)
            except ValueError:
                continue
            if ident not in found:
                found.append(ident)
    return found


def _text_body(msg: EmailMessage) -> str:
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except (KeyError, LookupError):
        part = None
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError, UnicodeError, AssertionError):
        return ""
    text = content if isinstance(content, str) else ""
    if part.get_content_subtype() == "html":
        text = re.sub(r"<[^>]+>", " ", text)
    return text


def _is_auto_reply(msg: EmailMessage) -> bool:
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and not auto.startswith("no"):
        return True
    if _header(msg, "X-Autoreply") or _header(msg, "X-Autorespond") or _header(msg, "X-Auto-Response-Suppress"):
        return True
    if _header(msg, "Precedence").strip().lower() in ("auto_reply", "auto-reply"):
        return True
    return bool(_OUT_OF_OFFICE.match(_header(msg, "Subject")))


def _dsn(msg: EmailMessage) -> InboundMail | None:
    if msg.get_content_type() != "multipart/report":
        return None
    if str(msg.get_param("report-type", "")).lower() != "delivery-status":
        return None
    status: str | None = None
    action: str | None = None
    recipient: str | None = None
    diagnostic: str | None = None
    original_ids: list[uuid.UUID] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            blocks = part.get_payload()
            for block in blocks[1:] if isinstance(blocks, list) else []:
                if not isinstance(block, EmailMessage):
                    continue
                status = str(block.get("Status", "") or "").strip() or status
                action = str(block.get("Action", "") or "").strip().lower() or action
                recipient = _address(str(block.get("Final-Recipient", "") or "")) or recipient
                diagnostic = str(block.get("Diagnostic-Code", "") or "").strip() or diagnostic
                if status:
                    break
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            original_ids.extend(_original_ids(part))
    if status is None:
        raise MalformedMail("The delivery status notification has no per-recipient Status.")
    match = _STATUS.search(status)
    if match is None:
        raise MalformedMail("The delivery status notification has an unreadable Status.")
    klass = match.group(1)
    if klass == "2":
        kind = MailKind.UNMATCHED  # delivered/relayed/expanded: nothing to act on
    elif klass == "5" and (action in (None, "", "failed")):
        kind = MailKind.HARD_BOUNCE
    else:
        kind = MailKind.SOFT_BOUNCE
    return InboundMail(
        kind=kind,
        message_ids=original_ids,
        mail_message_id=_header(msg, "Message-ID") or None,
        sender=_address(_header(msg, "From")),
        subject=_header(msg, "Subject")[:500] or None,
        status=match.group(0),
        action=action,
        recipient=recipient,
        diagnostic=(diagnostic or "")[:1000] or None,
    )


def _arf(msg: EmailMessage) -> InboundMail | None:
    """An abuse report (RFC 5965): ``multipart/report; report-type=feedback-report`` with a
    ``message/feedback-report`` part (``Feedback-Type: abuse``) and the original message (or its headers)."""
    if msg.get_content_type() != "multipart/report":
        return None
    if str(msg.get_param("report-type", "")).lower() != "feedback-report":
        return None
    report: EmailMessage | None = None
    original_ids: list[uuid.UUID] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/feedback-report":
            report = _report_fields(part)
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            original_ids.extend(_original_ids(part))
    if report is None:
        raise MalformedMail("The feedback report has no message/feedback-report part.")
    feedback_type = _header(report, "Feedback-Type").strip().lower()
    if not feedback_type:
        raise MalformedMail("The feedback report has no Feedback-Type.")
    return InboundMail(
        kind=MailKind.COMPLAINT if feedback_type == "abuse" else MailKind.UNMATCHED,
        message_ids=original_ids,
        mail_message_id=_header(msg, "Message-ID") or None,
        sender=_address(_header(msg, "From")),
        subject=_header(msg, "Subject")[:500] or None,
        action=feedback_type[:32],
        recipient=_address(_header(report, "Original-Rcpt-To")),
        diagnostic=_header(report, "User-Agent")[:1000] or None,
    )


def _report_fields(part: EmailMessage) -> EmailMessage:
    """The fields of a ``message/feedback-report`` part (parsed as a message, or as text)."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], EmailMessage):
        return payload[0]
    raw = payload if isinstance(payload, str) else ""
    return BytesParser(policy=policy.default).parsebytes(raw.encode("utf-8", "replace"), headersonly=True)


def _original_ids(part: EmailMessage) -> list[uuid.UUID]:
    if part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, EmailMessage):
            return our_ids(_header(inner, "Message-ID"), "<" + _header(inner, "X-Tidewater-Message").strip() + "@x>")
        return []
    try:
        content = part.get_content()
    except (LookupError, ValueError):
        return []
    headers = BytesParser(policy=policy.default).parsebytes(
        content.encode("utf-8", "replace") if isinstance(content, str) else bytes(content), headersonly=True
    )
    return our_ids(_header(headers, "Message-ID"), "<" + _header(headers, "X-Tidewater-Message").strip() + "@x>")


def _address(value: str) -> str | None:
    # Final-Recipient is "rfc822; user@example.com".
    if ";" in value:
        value = value.split(";", 1)[1]
    address = parseaddr(value)[1].strip()
    return address.lower() or None


def read(raw: bytes) -> InboundMail:
    """Parse and classify an inbound email (raise :class:`MalformedMail` when it is not one)."""
    msg = parse(raw)
    report = _dsn(msg) or _arf(msg)
    if report is not None:
        return report
    ids = our_ids(_header(msg, "In-Reply-To"), _header(msg, "References"))
    common = {
        "message_ids": ids,
        "mail_message_id": _header(msg, "Message-ID") or None,
        "sender": _address(_header(msg, "From")),
        "subject": _header(msg, "Subject")[:500] or None,
    }
    if _is_auto_reply(msg):
        return InboundMail(kind=MailKind.AUTO_REPLY, text=reply_text(_text_body(msg), limit=MAX_TEXT), **common)  # type: ignore[arg-type]
    kind = MailKind.REPLY if ids else MailKind.UNMATCHED
    return InboundMail(kind=kind, text=reply_text(_text_body(msg), limit=MAX_TEXT), **common)  # type: ignore[arg-type]
