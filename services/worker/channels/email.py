"""Email: build a CAN-SPAM / RFC 8058 compliant message and hand it to SMTP, classified.

The send is split into its SMTP phases so every failure is placed exactly: anything before
the final "." of DATA is sent (``RETRY`` for 4xx and network errors, ``PERMANENT`` for 5xx);
a reply to the final "." is authoritative; a connection lost while waiting for that reply is
``UNKNOWN`` (RFC 1047: the server may have accepted the message).

DKIM: right before the content goes out, :class:`DkimSigning` signs it with the organization's
key for the From domain (``libs.deliverability``), unless the brand's sender with that From
address says its own server signs, or the domain has no key; then the message goes as it is.

OAuth 2.0: an account of a sender whose ``auth_mode`` is ``oauth2`` logs in with
``AUTH XOAUTH2`` and the sender's current access token (``libs.oauth_tokens``, renewed when
near expiry) instead of a password. The transport finds the sender by the account's server,
username and the From address (:class:`OAuthLogins`) when the account does not name it; a
sender whose authorization must be connected again fails its mail as ``oauth_reconnect``.
"""

from __future__ import annotations

import html
import re
import smtplib
import socket
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.policy import SMTP as SMTP_POLICY
from email.quoprimime import body_encode
from email.utils import format_datetime, formataddr, parseaddr
from typing import TYPE_CHECKING, Protocol

import structlog

from libs import oauth_tokens
from libs.db.base import utcnow
from libs.db.session import system_session
from libs.optout import as_sentence
from services.worker.channels.outcome import SendResult, clean_header

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from libs.crypto import SecretBox

log = structlog.get_logger(__name__)

_LEADING_DOT = re.compile(rb"(?m)^\.")
_MESSAGE_ID = re.compile(rb"(?im)^Message-ID:[ \t]*(?:\r\n[ \t]+)?(<[^<>\s]+>)")
_THREAD_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")
_FROM = re.compile(rb"(?im)^From:[ \t]*((?:.*)(?:\r\n[ \t].*)*)")
_LEDGER_ID = re.compile(rb"(?im)^X-Tidewater-Message:[ \t]*([0-9a-f-]{36})\r$")
CRLF = b"\r\n"
DEFAULT_OPT_OUT = "Not interested? Use the link below to unsubscribe."
"""The footer's opt-out sentence when the brand wrote none."""


@dataclass(frozen=True, slots=True)
class SmtpAccount:
    """Where and how to submit mail for one sender; the password is already decrypted."""

    host: str
    port: int
    security: str = "none"
    username: str | None = None
    password: str | None = None
    sender_id: uuid.UUID | None = None
    """Set for a sender connected with OAuth 2.0: its access token logs in (XOAUTH2), not the password."""

    @property
    def key(self) -> tuple[str, int, str, str | None]:
        """Identity of a reusable connection."""
        return (self.host, self.port, self.security, self.username)


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """Everything one email needs; the footer and headers are rendered by code, not the model."""

    message_id: str
    from_address: str
    to_address: str
    subject: str
    body: str
    postal_address: str
    unsubscribe_url: str
    brand_name: str
    from_name: str | None = None
    reply_to: str | None = None
    opt_out_text: str | None = None
    open_url: str | None = None
    """The signed open-pixel URL (``libs.links.open_url``), embedded in the HTML part when given."""
    references: tuple[str, ...] = ()
    """Message-IDs (``<id@domain>``) of the earlier emails of the thread, oldest first: a follow-up's
    ``In-Reply-To`` is the last, its ``References`` all of them (RFC 5322, 3.6.4)."""

    @property
    def domain(self) -> str:
        """The sender's domain (Message-ID right-hand side, unsubscribe mailbox)."""
        return clean_header(self.from_address).rpartition("@")[2] or "localhost"

    @property
    def message_id_header(self) -> str:
        """The ``Message-ID`` this email goes out with: ``<{ledger id}@{sender domain}>``."""
        return f"<{clean_header(self.message_id)}@{self.domain}>"


def opt_out_sentence(email: OutgoingEmail) -> str:
    """The brand's opt-out wording as a finished sentence (the default one when it has none)."""
    return as_sentence(clean_header(email.opt_out_text)) or DEFAULT_OPT_OUT


def footer_lines(email: OutgoingEmail) -> list[str]:
    """The legally required footer: who sends, the postal address, the opt-out, the link on its own line."""
    return [
        f"{clean_header(email.brand_name)}, {clean_header(email.postal_address)}",
        opt_out_sentence(email),
        f"Unsubscribe: {clean_header(email.unsubscribe_url)}",
    ]


def _thread(email: OutgoingEmail) -> list[str]:
    """The thread's Message-IDs that are well formed (anything else would be a header injection)."""
    return [ref for ref in (clean_header(r) for r in email.references) if _THREAD_ID.fullmatch(ref)]


def build_email(email: OutgoingEmail) -> bytes:
    """Build the MIME message, ready for DATA: text and HTML, Message-ID, thread, List-Unsubscribe (RFC 8058).

    Written directly rather than through ``email.message.EmailMessage``, whose header parsing
    and refolding cost about 2.5 ms per message (the largest CPU cost of a send). Plain short
    ASCII headers are written as they are; anything else (non-ASCII names or subjects, long
    lines) goes through the email package's own header folding, as before. Both parts are
    quoted-printable UTF-8, so the ``=_`` boundary can never occur inside them.
    """
    unsubscribe_url = clean_header(email.unsubscribe_url)
    mailto = f"<mailto:unsubscribe@{email.domain}?subject=unsubscribe>"
    headers = [
        _header("Message-ID", email.message_id_header, limit=990),
        _header("Date", format_datetime(utcnow())),
        _header("From", formataddr((clean_header(email.from_name), clean_header(email.from_address)))),
        _header("To", clean_header(email.to_address)),
    ]
    if email.reply_to:
        headers.append(_header("Reply-To", clean_header(email.reply_to)))
    thread = _thread(email)
    if thread:
        headers.append(_header("In-Reply-To", thread[-1], limit=990))
        if all(len(ref) <= 990 for ref in thread):  # one id per line, folded between them
            headers.append(("References: " + "\r\n ".join(thread) + "\r\n").encode("ascii"))
        else:
            headers.append(_header("References", " ".join(thread)))
    headers.append(_header("Subject", clean_header(email.subject) or clean_header(email.brand_name)))
    if _plain(unsubscribe_url, 990) and _plain(mailto, 990):
        # One URI per line (RFC 2369 allows folding between them); never encoded words, which
        # receivers would not read as a URI (the email package encodes a line it cannot fold).
        headers.append(f"List-Unsubscribe: <{unsubscribe_url}>,\r\n {mailto}\r\n".encode("ascii"))
    else:
        headers.append(_header("List-Unsubscribe", f"<{unsubscribe_url}>, {mailto}"))
    headers.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    headers.append(_header("X-Tidewater-Message", clean_header(email.message_id)))
    boundary = f"=_{uuid.uuid4().hex}"
    headers.append(f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'.encode())

    # The body is what the writer produced, the brand's signature included (it adds it once).
    body = email.body.replace("\r\n", "\n").replace("\x00", "").strip()
    footer = footer_lines(email)
    text = f"{body}\n\n-- \n" + "\n".join(footer) + "\n"

    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in body.split("\n\n") if p)
    html_footer = (
        f'<p style="color:#666;font-size:12px">{html.escape(footer[0])}<br>{html.escape(footer[1])}<br>'
        f'<a href="{html.escape(unsubscribe_url, quote=True)}">Unsubscribe</a></p>'
    )
    pixel = (
        f'<img src="{html.escape(clean_header(email.open_url), quote=True)}" width="1" height="1" alt="">'
        if email.open_url
        else ""
    )
    markup = f"<!doctype html><html><body>{paragraphs}{html_footer}{pixel}</body></html>"
    parts = [b"".join(headers), CRLF]
    for subtype, content in (("plain", text), ("html", markup)):
        parts.append(
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode()
        )
        # quoprimime encodes one character per byte: hand it the UTF-8 bytes as Latin-1 text.
        octets = content.encode("utf-8").decode("latin-1")
        parts.append(body_encode(octets, maxlinelen=76, eol="\r\n").encode("ascii"))
        parts.append(CRLF)
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


def _plain(value: str, limit: int) -> bool:
    """Whether ``value`` can be written as a header value as it is: printable ASCII, no encoded word."""
    return len(value) <= limit and value.isascii() and value.isprintable() and "=?" not in value


def _header(name: str, value: str, *, limit: int | None = None) -> bytes:
    """One header field with its CRLF: as it is when short and plain, else folded by the email package.

    ``limit``: how long a plain value may be written unfolded; a message id is one token, which
    folding could only put on a line of its own (up to 998 octets a line are allowed).
    """
    if _plain(value, 76 - len(name) if limit is None else limit):
        return f"{name}: {value}\r\n".encode("ascii")
    return SMTP_POLICY.header_factory(name, value).fold(policy=SMTP_POLICY).encode("ascii")


class _Keys(Protocol):
    """What signing needs of the send context: its engine and the box that opens stored secrets."""

    engine: Engine

    @property
    def box(self) -> SecretBox:
        """The key box."""


Signer = Callable[[bytes], bytes]
"""Returns a built message as it goes out: signed, or as it is."""


def _unsigned(data: bytes) -> bytes:
    return data


class DkimSigning:
    """Sign a built message with the key of its organization and From domain, when Tidewater signs for it.

    The message names its ledger row (``X-Tidewater-Message``), which names the organization; a
    sender of the brand with the same From address marked ``own_server`` turns signing off.
    Opened keys are kept (they change only by a rotation, which changes the stored token).
    """

    def __init__(self, keys: _Keys) -> None:
        self.keys = keys
        self._opened: dict[str, str] = {}

    def __call__(self, data: bytes) -> bytes:
        """``data`` signed, or as it is when nothing signs for its domain."""
        from libs.db.models.deliverability import ROTATION_OVERLAP
        from libs.deliverability import dkim
        from libs.deliverability.keys import SIGNING_KEY, domain_of

        head = data.partition(b"\r\n\r\n")[0] + b"\r\n"
        found_id, found_from = _LEDGER_ID.search(head), _FROM.search(head)
        if found_id is None or found_from is None:
            return data
        address = parseaddr(found_from.group(1).decode("utf-8", "replace").replace("\r", "").replace("\n", ""))[1]
        domain = domain_of(address)
        params = {
            "message_id": found_id.group(1).decode("ascii"),
            "domain": domain,
            "from_address": address,
            "overlap": ROTATION_OVERLAP.total_seconds(),
        }
        with system_session(self.keys.engine) as session:
            row = session.execute(SIGNING_KEY, params).first()
        if row is None:
            return data
        signed = dkim.sign(
            data, row.domain, row.selector, self._open(row.org_id, row.domain, row.private_key_encrypted)
        )
        if row.previous_selector and row.previous_private_key_encrypted:
            # Shortly after a rotation DNS may still publish the replaced key: sign with both.
            previous = self._open(row.org_id, row.domain, row.previous_private_key_encrypted)
            signed = dkim.sign(signed, row.domain, row.previous_selector, previous)
        return signed

    def _open(self, org_id: uuid.UUID, domain: str, token: str) -> str:
        from libs.deliverability import dkim

        private = self._opened.get(token)
        if private is None:
            private = dkim.unseal(self.keys.box, org_id, domain, token)
            if len(self._opened) >= 256:
                self._opened.clear()
            self._opened[token] = private
        return private


class OAuthLogins:
    """The access tokens of the senders that log in with XOAUTH2 (``libs.oauth_tokens``)."""

    def __init__(self, keys: _Keys) -> None:
        self.keys = keys

    def token(self, sender_id: uuid.UUID) -> str:
        """The sender's current access token (renewed first when near expiry)."""
        return oauth_tokens.access_token(self.keys.engine, self.keys.box, sender_id)


class SmtpTransport:
    """SMTP submission with one kept connection per sender account and explicit timeouts.

    ``signer`` turns a built message into what goes out (the worker's context gives
    :class:`DkimSigning`; none: sent as built). ``logins`` gives the access tokens of accounts
    that name an OAuth sender (``SmtpAccount.sender_id``); without it such an account cannot log in.
    """

    def __init__(self, *, timeout: float, signer: Signer | None = None, logins: OAuthLogins | None = None) -> None:
        self.timeout = timeout
        self.signer: Signer = signer or _unsigned
        self.logins = logins
        self._connections: dict[tuple[str, int, str, str | None], smtplib.SMTP] = {}
        self._busy = threading.Lock()
        """Held from :meth:`begin` until the transaction is finished or aborted: one conversation at a time."""

    def close(self) -> None:
        """Close every kept connection."""
        for key in list(self._connections):
            self._drop(key, quit=True)

    def _drop(self, key: tuple[str, int, str, str | None], *, quit: bool = False) -> None:
        conn = self._connections.pop(key, None)
        if conn is None:
            return
        try:
            if quit:
                conn.quit()
            else:
                conn.close()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def _connect(self, account: SmtpAccount) -> smtplib.SMTP:
        context = ssl.create_default_context()
        conn: smtplib.SMTP
        if account.security == "tls":
            conn = smtplib.SMTP_SSL(account.host, account.port, timeout=self.timeout, context=context)
        else:
            conn = smtplib.SMTP(account.host, account.port, timeout=self.timeout)
        # Commands and replies alternate; without TCP_NODELAY a small write waiting behind an
        # unacknowledged one meets the peer's delayed ACK (about 40 ms per message on loopback).
        if conn.sock is not None:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.ehlo()
        if account.security == "starttls":
            conn.starttls(context=context)
            conn.ehlo()
        if account.sender_id is not None and account.username:
            conn.auth(
                "XOAUTH2",
                oauth_tokens.smtp_xoauth2(account.username, self._token(account.sender_id)),
                initial_response_ok=True,
            )
        elif account.username and account.password:
            conn.login(account.username, account.password)
        return conn

    def _token(self, sender_id: uuid.UUID) -> str:
        if self.logins is None:
            raise oauth_tokens.NeedsReconnect("No database to read the sender's OAuth token from.")
        return self.logins.token(sender_id)

    def send(self, account: SmtpAccount, data: bytes, *, mail_from: str, rcpt_to: str) -> SendResult:
        """Submit ``data`` (from :func:`build_email`); reuse the account's connection, reconnecting once if stale."""
        opened = self.begin(account, mail_from=mail_from, rcpt_to=rcpt_to)
        return opened if isinstance(opened, SendResult) else opened.finish(data)

    def begin(self, account: SmtpAccount, *, mail_from: str, rcpt_to: str) -> SmtpTransaction | SendResult:
        """Open a transaction up to the server's 354 to DATA, or say why it could not be opened.

        Nothing is handed off yet (a server accepts a message only at the final "."), so this
        part may run before the message's claim is durable; :meth:`SmtpTransaction.finish`
        is the hand-off. A kept connection found closed is replaced once. The transport is busy
        until the returned transaction is finished or aborted.
        """
        self._busy.acquire()
        try:
            opened = self._begin(account, mail_from=mail_from, rcpt_to=rcpt_to)
        except BaseException:
            self._busy.release()
            raise
        if isinstance(opened, SendResult):
            self._busy.release()
        return opened

    def _begin(self, account: SmtpAccount, *, mail_from: str, rcpt_to: str) -> SmtpTransaction | SendResult:
        if account.sender_id is not None and not account.username:
            account = replace(account, username=clean_header(mail_from))
        for attempt in (1, 2):
            try:
                conn = self._connections.get(account.key)
                fresh = conn is None
                if conn is None:
                    conn = self._connect(account)
                    self._connections[account.key] = conn
            except smtplib.SMTPAuthenticationError as exc:
                return SendResult.permanent(f"smtp_{exc.smtp_code}", _reply_text(exc.smtp_error))
            except oauth_tokens.NeedsReconnect as exc:
                return SendResult.permanent("oauth_reconnect", str(exc))
            except oauth_tokens.TokenUnavailable as exc:
                return SendResult.retry("oauth_unavailable", str(exc))
            except smtplib.SMTPResponseException as exc:
                return _before_handoff(exc.smtp_code, exc.smtp_error)
            except (OSError, smtplib.SMTPException) as exc:
                return SendResult.retry("smtp_connect", f"{type(exc).__name__}: {exc}")
            try:
                failed = self._envelope(conn, mail_from=mail_from, rcpt_to=rcpt_to, key=account.key)
            except _StaleConnection as exc:
                self._drop(account.key)
                if fresh or attempt == 2:
                    return SendResult.retry("smtp_disconnected", str(exc))
                continue
            except BaseException:
                self._drop(account.key)  # interrupted mid-command: the connection's state is unknown
                raise
            return failed or SmtpTransaction(self, conn, account.key)
        raise AssertionError("unreachable")  # pragma: no cover

    def _envelope(
        self, conn: smtplib.SMTP, *, mail_from: str, rcpt_to: str, key: tuple[str, int, str, str | None]
    ) -> SendResult | None:
        # Envelope: nothing is handed off yet, so network errors are safe to retry.
        try:
            code, reply = conn.mail(clean_header(mail_from))
            if code != 250:
                self._reset(conn, key)
                return _before_handoff(code, reply)
            code, reply = conn.rcpt(clean_header(rcpt_to))
            if code not in (250, 251):
                self._reset(conn, key)
                return _before_handoff(code, reply)
            conn.putcmd("data")
            code, reply = conn.getreply()
            if code != 354:
                self._reset(conn, key)
                return _before_handoff(code, reply)
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            if isinstance(exc.__context__, TimeoutError):
                self._drop(key)
                return SendResult.retry("smtp_timeout", f"{type(exc).__name__}: {exc}")
            raise _StaleConnection(f"{type(exc).__name__}: {exc}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._drop(key)
            return SendResult.retry("smtp_envelope", f"{type(exc).__name__}: {exc}")
        return None

    def _signed(self, data: bytes) -> bytes:
        """``data`` as the signer returns it; unsigned when signing fails (the mail still goes, the log says why)."""
        try:
            return self.signer(data)
        except Exception as exc:
            log.warning("dkim_sign_failed", error=type(exc).__name__)
            return data

    def _content(self, conn: smtplib.SMTP, data: bytes, key: tuple[str, int, str, str | None]) -> SendResult:
        data = self._signed(data)
        payload = _LEADING_DOT.sub(b"..", data)
        if not payload.endswith(CRLF):
            payload += CRLF
        try:
            # One write for the content and its terminating "." (no Nagle stall between them).
            conn.send(payload + b"." + CRLF)
        except (OSError, smtplib.SMTPException) as exc:
            # The write failed, so the terminating ".\r\n" did not fully reach the server: it cannot
            # have accepted the message.
            self._drop(key)
            return SendResult.retry("smtp_data", f"{type(exc).__name__}: {exc}")
        try:
            code, reply = conn.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self._drop(key)
            return SendResult.unknown("smtp_lost_after_data", f"{type(exc).__name__}: {exc}")
        if code == 250:
            # Known by its Message-ID, which replies reference; the server's own queue id is not kept.
            return SendResult.sent(_message_id(data) or _reply_text(reply) or "accepted")
        self._reset(conn, key)
        if 400 <= code < 500:
            return SendResult.retry(f"smtp_{code}", _reply_text(reply))
        if 500 <= code < 600:
            return SendResult.permanent(f"smtp_{code}", _reply_text(reply))
        return SendResult.unknown(f"smtp_{code}", _reply_text(reply))

    def _reset(self, conn: smtplib.SMTP, key: tuple[str, int, str, str | None]) -> None:
        try:
            conn.rset()
        except (OSError, smtplib.SMTPException):
            self._drop(key)


class SmtpTransaction:
    """An SMTP transaction opened up to the 354 reply to DATA: the server has nothing to deliver yet."""

    def __init__(self, transport: SmtpTransport, conn: smtplib.SMTP, key: tuple[str, int, str, str | None]) -> None:
        self._transport = transport
        self._conn = conn
        self._key = key
        self._open = True

    def _close(self) -> None:
        if self._open:
            self._open = False
            self._transport._busy.release()

    def finish(self, data: bytes) -> SendResult:
        """The hand-off: send the content and its final ".", and classify the reply."""
        if not self._open:
            raise RuntimeError("SMTP transaction already finished or aborted")
        try:
            return self._transport._content(self._conn, data, self._key)
        finally:
            self._close()

    def abort(self) -> None:
        """Give the transaction up without a hand-off.

        The server reads everything after 354 as content until a line holding only ".", so the
        only way out is to close the connection: a server that never saw the final "." discards
        what it got (RFC 5321, 4.1.1.4). The next message opens a fresh connection. Does nothing
        once the transaction is finished or aborted.
        """
        if self._open:
            try:
                self._transport._drop(self._key)
            finally:
                self._close()


class _StaleConnection(Exception):
    """A kept connection turned out closed before anything was handed off."""


def _message_id(data: bytes) -> str | None:
    """The ``Message-ID`` of a built message (header section only), or None."""
    found = _MESSAGE_ID.search(data.partition(b"\r\n\r\n")[0])
    return found.group(1).decode("ascii") if found else None


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return text.replace("\r", " ").replace("\n", " ").strip()[:1000]


def _before_handoff(code: int, reply: bytes | str) -> SendResult:
    if 400 <= code < 500:
        return SendResult.retry(f"smtp_{code}", _reply_text(reply))
    return SendResult.permanent(f"smtp_{code}", _reply_text(reply))


__all__ = [
    "DEFAULT_OPT_OUT",
    "DkimSigning",
    "OutgoingEmail",
    "SmtpAccount",
    "SmtpTransaction",
    "SmtpTransport",
    "build_email",
    "footer_lines",
    "opt_out_sentence",
]
