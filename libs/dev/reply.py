"""``sdr reply``: answer (or bounce) a message the local SMTP sink kept, through the real inbound-mail hook.

The sink keeps every message it accepts as one file of a maildir, ``<data dir>/mail/new/``
(``cur/`` once a mail client has read it). A reply is built as a mail client would build it
(RFC 5322: ``From`` the original recipient, ``To`` its ``Reply-To`` or ``From``,
``In-Reply-To`` and ``References`` naming its ``Message-ID``, ``Subject: Re: ...``, the
original quoted below); a bounce is an RFC 3464 delivery status notification
(``multipart/report; report-type=delivery-status``) carrying the original's headers. Either
is POSTed raw (``message/rfc822``) to ``/hooks/email/inbound``, signed the way the hook
checks it: ``X-Inbound-Signature: t=<unix>,v1=<hex hmac_sha256(secret, f"{t}.{body}")>``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid
from pathlib import Path

import httpx

from libs.dev.edge import START_HINT, BadValue, CliError

MAIL_FOLDER = "mail"
"""The sink's maildir under the data dir (``services.worker.sinks.MAIL_FOLDER``)."""
INBOUND_EMAIL_PATH = "/hooks/email/inbound"
DEFAULT_BODY = "Thanks for reaching out, this sounds interesting. Could we talk next week?"
_STATUS = re.compile(r"^([45])\.\d{1,3}\.\d{1,3}$")


def sink_messages(data_dir: Path) -> list[Path]:
    """Return the files of the sink's maildir under ``data_dir``, oldest first."""
    folder = data_dir / MAIL_FOLDER
    files = [path for sub in ("new", "cur") for path in (folder / sub).glob("*") if path.is_file()]
    return sorted(files, key=lambda path: (path.stat().st_mtime_ns, path.name))


def find_message(data_dir: Path, given: str | None) -> Path:
    """Return the file ``given`` names (a path, or a file name in the sink's maildir), else the newest one."""
    if given is None:
        messages = sink_messages(data_dir)
        if not messages:
            raise BadValue(
                f"the mail sink has no message yet ({data_dir / MAIL_FOLDER / 'new'} is empty)",
                "send an email through a sender on 127.0.0.1:1025 first, or give a file",
            )
        return messages[-1]
    path = Path(given).expanduser()
    if path.is_file():
        return path
    for candidate in sink_messages(data_dir):
        if candidate.name == given or candidate.name.split(":", 1)[0] == given:
            return candidate
    raise BadValue(f"no message {given!r}", f"give a file, or a name from {data_dir / MAIL_FOLDER / 'new'}")


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(message, EmailMessage) or not message.keys():
        raise BadValue("that file is not an email", "give a file from the sink's maildir")
    return message


def _first_address(value: str | None) -> tuple[str, str] | None:
    pairs = [(name, address) for name, address in getaddresses([value or ""]) if "@" in address]
    return pairs[0] if pairs else None


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _original(raw: bytes) -> tuple[EmailMessage, tuple[str, str], tuple[str, str], str]:
    message = _parse(raw)
    message_id = str(message.get("Message-ID") or "").strip()
    if not message_id:
        raise CliError("that message has no Message-ID, so no answer could name it", "pick a message Tidewater sent")
    sender = _first_address(str(message.get("Reply-To") or "")) or _first_address(str(message.get("From") or ""))
    recipient = _first_address(str(message.get("To") or ""))
    if sender is None or recipient is None:
        raise BadValue("that message has no From or To address", "pick a message Tidewater sent")
    return message, sender, recipient, message_id


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):
        return ""
    return content if isinstance(content, str) else ""


def build_reply(raw: bytes, body: str, *, now: datetime | None = None) -> bytes:
    """Return the RFC 5322 reply to the message ``raw`` the way a mail client writes it, with ``body`` on top."""
    original, sender, recipient, message_id = _original(raw)
    now = now or datetime.now(UTC)
    subject = str(original.get("Subject") or "").strip()
    reply = EmailMessage(policy=policy.SMTP)
    reply["From"] = Address(recipient[0], addr_spec=recipient[1])
    reply["To"] = Address(sender[0], addr_spec=sender[1])
    reply["Subject"] = subject if re.match(r"(?i)re\s*:", subject) else f"Re: {subject}".rstrip()
    reply["Date"] = format_datetime(now)
    reply["Message-ID"] = make_msgid(domain=_domain(recipient[1]))
    reply["In-Reply-To"] = message_id
    reply["References"] = " ".join(part for part in (str(original.get("References") or "").strip(), message_id) if part)
    when = str(original.get("Date") or "").strip()
    quoted = "\n".join(f"> {line}".rstrip() for line in _text(original).splitlines())
    who = sender[0] or sender[1]
    reply.set_content(f"{body.strip()}\n\nOn {when}, {who} wrote:\n{quoted}\n" if quoted else f"{body.strip()}\n")
    return reply.as_bytes()


def build_bounce(raw: bytes, *, status: str = "5.1.1", now: datetime | None = None) -> bytes:
    """Return an RFC 3464 delivery status notification saying the message ``raw`` could not be delivered."""
    match = _STATUS.match(status)
    if match is None:
        raise BadValue(f"--status {status!r} is not a DSN status", "use e.g. 5.1.1 (hard) or 4.2.2 (soft)")
    _, sender, recipient, _ = _original(raw)
    now = now or datetime.now(UTC)
    domain = _domain(recipient[1])
    mta = f"mx.{domain}"
    failed = match.group(1) == "5"
    action = "failed" if failed else "delayed"
    reply = "550" if failed else "452"
    diagnostic = f"smtp; {reply} {status} <{recipient[1]}>: {'User unknown' if failed else 'Mailbox full'}"
    headers = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("utf-8", "replace").strip()
    boundary = f"{uuid.uuid4().hex}/{mta}"
    date = format_datetime(now)
    human = (
        f"This is the mail system at host {mta}.\n\n"
        + (
            "I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n"
            if failed
            else "Your message could not be delivered yet; delivery will be retried.\n\n"
        )
        + f"<{recipient[1]}>: {diagnostic.split('; ', 1)[1]}\n"
    )
    text = (
        f"From: Mail Delivery System <MAILER-DAEMON@{mta}>\n"
        f"To: {sender[1]}\n"
        f"Subject: {'Undelivered Mail Returned to Sender' if failed else 'Delayed Mail (still being retried)'}\n"
        f"Date: {date}\n"
        f"Message-ID: {make_msgid(domain=mta)}\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n boundary="{boundary}"\n'
        "\n"
        "This is a MIME-encapsulated message.\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Notification\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        f"{human}\n"
        f"--{boundary}\n"
        "Content-Description: Delivery report\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        f"Reporting-MTA: dns; {mta}\n"
        f"Arrival-Date: {date}\n"
        "\n"
        f"Final-Recipient: rfc822; {recipient[1]}\n"
        f"Original-Recipient: rfc822;{recipient[1]}\n"
        f"Action: {action}\n"
        f"Status: {status}\n"
        f"Diagnostic-Code: {diagnostic}\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Undelivered Message Headers\n"
        "Content-Type: text/rfc822-headers\n"
        "\n"
        f"{headers}\n"
        "\n"
        f"--{boundary}--\n"
    )
    return text.replace("\n", "\r\n").encode("utf-8")


def signature(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """Return the ``X-Inbound-Signature`` header value the inbound hook checks for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def post_inbound(base_url: str, raw: bytes, secret: str, *, timeout: float = 15.0) -> httpx.Response:
    """POST ``raw`` to ``base_url``'s inbound-mail hook signed with ``secret``; :class:`CliError` if unreachable."""
    url = base_url.rstrip("/") + INBOUND_EMAIL_PATH
    headers = {"Content-Type": "message/rfc822", "X-Inbound-Signature": signature(secret, raw)}
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            return client.post(url, content=raw, headers=headers)
    except httpx.ConnectError:
        raise CliError(
            f"cannot reach the gateway at {base_url} (connection refused)", f"{START_HINT} or pass --url"
        ) from None
    except httpx.TimeoutException:
        raise CliError(
            f"the gateway at {base_url} did not answer in {timeout:.0f}s", f"{START_HINT} or pass --url"
        ) from None
    except httpx.HTTPError as exc:
        raise CliError(f"cannot post to {url} ({type(exc).__name__}: {exc})", "check --url") from None
