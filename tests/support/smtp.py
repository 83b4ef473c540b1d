"""A loopback SMTP server for tests, built on aiosmtpd, that records and can misbehave on cue.

Start one as a context manager; it listens on ``127.0.0.1`` on a free port in its own thread
and stops (thread joined, port closed) when the block ends::

    from tests.support.smtp import SmtpServer

    with SmtpServer(credentials={"bot@acme.test": "s3cret"}) as smtp:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=5)
        client.login("bot@acme.test", "s3cret")
        client.sendmail("bot@acme.test", ["lead@example.test"], b"Subject: hi\\r\\n\\r\\nhello")
        [message] = smtp.wait_for_messages(1)
        assert message.rcpt_tos == ["lead@example.test"]
        assert message.parsed()["Subject"] == "hi"

What it can do:

- **Record** every accepted message as a :class:`ReceivedMessage`: the envelope
  (``mail_from``, ``rcpt_tos``), the raw ``data`` bytes exactly as received, and the login
  the session authenticated as. ``wait_for_messages(n)`` blocks on a condition (no sleeps)
  until ``n`` messages arrived or its timeout passes.
- **AUTH PLAIN and LOGIN** against ``credentials`` (login -> password). A wrong pair is
  answered ``535 5.7.8 Authentication credentials invalid``; ``refuse_logins=True`` refuses
  every pair. Every attempt lands in ``auth_attempts`` (mechanism, login, success; never the
  password). With ``auth_required=True`` MAIL before AUTH is answered ``530``.
- **TLS**: ``security="starttls"`` offers STARTTLS (and then only allows AUTH after it);
  ``security="tls"`` speaks TLS from the first byte (SMTPS). The certificate is self-signed
  for ``localhost`` and ``127.0.0.1``; trust it with ``smtp.client_ssl_context()`` or the PEM
  file at ``smtp.cafile``.
- **Scripted failures**: ``reply_at("MAIL" | "RCPT" | "DATA", "451 4.3.0 Try again later",
  times=1)`` answers that stage with the given line the next ``times`` times (``None``:
  always), then behaves normally again. A message refused at DATA is not recorded.
  ``drop_after_data(times=1)`` records the message and then closes the connection instead
  of answering the final ``.``: the client cannot know whether it was delivered (the
  ambiguous case RFC 1047 describes).
- **AUTH XOAUTH2** (Google's and Microsoft's SASL mechanism for OAuth 2.0): ``xoauth2`` is a
  callable ``(user, bearer_token) -> bool`` that says whether the token is live for that user
  (e.g. asking the loopback OAuth provider); without it every XOAUTH2 attempt is refused
  (``535``). Attempts land
  in ``auth_attempts`` with mechanism ``XOAUTH2``, the tokens presented in ``bearer_tokens``.
- ``connections`` counts sessions opened (after the greeting).

Two helpers cover servers that are not there: :func:`unused_port` (connection refused) and
:func:`silent_server` (the TCP connection opens but no greeting ever comes, so only the
client's timeout ends the wait).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.servers import free_port

Stage = Literal["MAIL", "RCPT", "DATA"]
Security = Literal["none", "starttls", "tls"]


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted: its envelope and the raw bytes after DATA."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None = None

    def parsed(self) -> EmailMessage:
        """Parse ``data`` with the modern email policy."""
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass(frozen=True)
class AuthAttempt:
    """One AUTH exchange: which mechanism, which login, and whether it was accepted."""

    mechanism: str
    login: str
    success: bool


@dataclass
class _Script:
    reply: str
    times: int | None


@dataclass
class _Certificate:
    cert: Path
    key: Path


_cert_lock = threading.Lock()
_cert: _Certificate | None = None


def _certificate() -> _Certificate:
    """Create (once per process) a self-signed certificate for localhost and 127.0.0.1."""
    global _cert
    with _cert_lock:
        if _cert is None:
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(
                    x509.SubjectAlternativeName(
                        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                    ),
                    critical=False,
                )
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256())
            )
            folder = Path(tempfile.mkdtemp(prefix="tw-smtp-cert-"))
            cert_path, key_path = folder / "cert.pem", folder / "key.pem"
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            key_path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            _cert = _Certificate(cert=cert_path, key=key_path)
        return _cert


class _Handler:
    """aiosmtpd hooks that consult the owning server's script and record what arrives."""

    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if not getattr(session, "tw_counted", False):
            session.tw_counted = True  # type: ignore[attr-defined]
            self.owner._count_connection()
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        scripted = self.owner._take("MAIL")
        if scripted:
            return scripted
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        scripted = self.owner._take("RCPT")
        if scripted:
            return scripted
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.owner.data_delay:
            await asyncio.sleep(self.owner.data_delay)
        scripted = self.owner._take("DATA")
        if scripted:
            return scripted
        raw = envelope.original_content or b""
        auth = session.auth_data
        login = auth.login.decode("utf-8", "replace") if isinstance(auth, LoginPassword) else None
        self.owner._record(
            ReceivedMessage(
                mail_from=str(envelope.mail_from), rcpt_tos=list(envelope.rcpt_tos), data=bytes(raw), login=login
            )
        )
        if self.owner._take_drop() and isinstance(server.transport, asyncio.Transport):
            # Close before the reply to the final "." leaves: the message is here, the client can't know.
            server.transport.abort()
            server.transport = None
        return "250 2.0.0 OK queued"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2: ``user=<user>^Aauth=Bearer <token>^A^A``, as the initial response or after a 334."""
        if len(args) > 1:
            raw: Any = args[1].encode()
        else:
            raw = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(raw, bytes):
                return AuthResult(success=False)
        try:
            fields = dict(
                part.split("=", 1) for part in base64.b64decode(raw, validate=True).decode().split("\x01") if part
            )
            user, token = fields["user"], fields["auth"].removeprefix("Bearer ")
        except (binascii.Error, UnicodeDecodeError, ValueError, KeyError):
            await server.push("501 5.5.2 Cannot decode the XOAUTH2 response")
            return AuthResult(success=False, handled=True)
        return self.owner._bearer(user, token)


class _QuietSMTP(SMTP):
    """aiosmtpd's SMTP that ignores replies pushed after the test closed the connection."""

    async def push(self, status: Any) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        await super().push(status)


class _Controller(Controller):
    def factory(self) -> SMTP:
        with warnings.catch_warnings():
            # "AUTH without TLS" is the point of the plain-text mode; say it once in the docs, not per session.
            warnings.simplefilter("ignore", UserWarning)
            return _QuietSMTP(self.handler, **self.SMTP_kwargs)


class SmtpServer:
    """A loopback SMTP server that records messages and can refuse logins or fail on cue."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        credentials: dict[str, str] | None = None,
        refuse_logins: bool = False,
        auth_required: bool = False,
        security: Security = "none",
        hostname: str = "smtp.loopback.test",
        host: str | None = None,
        data_delay: float = 0.0,
        xoauth2: Callable[[str, str], bool] | None = None,
    ) -> None:
        if host is not None:
            self.host = host  # e.g. a bridge address other network namespaces reach
        self.data_delay = data_delay
        """Seconds each DATA waits before it is accepted (a slow provider, to catch a send in flight)."""
        self.credentials = dict(credentials or {})
        self.xoauth2 = xoauth2
        self.bearer_tokens: list[str] = []
        self.refuse_logins = refuse_logins
        self.security = security
        self.port = free_port()
        self.messages: list[ReceivedMessage] = []
        self.auth_attempts: list[AuthAttempt] = []
        self.connections = 0
        self._scripts: dict[str, list[_Script]] = {"MAIL": [], "RCPT": [], "DATA": []}
        self._drops = 0
        self._lock = threading.Condition()
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": hostname,
            "authenticator": self._authenticate,
            "auth_required": auth_required,
            "auth_require_tls": security == "starttls",
            "ready_timeout": 10.0,
        }
        if security != "none":
            cert = _certificate()
            server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_context.load_cert_chain(cert.cert, cert.key)
            if security == "starttls":
                kwargs["tls_context"] = server_context
            else:
                kwargs["ssl_context"] = server_context
        self._controller = _Controller(_Handler(self), **kwargs)

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> SmtpServer:
        """Start listening; returns self."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening and join the server thread."""
        self._controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # client side helpers -------------------------------------------------------------------

    @property
    def cafile(self) -> Path:
        """PEM file of the server's self-signed certificate (trust it to verify TLS)."""
        return _certificate().cert

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (and verifies the host name)."""
        return ssl.create_default_context(cafile=str(self.cafile))

    # scripting -----------------------------------------------------------------------------

    def reply_at(self, stage: Stage, reply: str, *, times: int | None = 1) -> None:
        """Answer ``stage`` with ``reply`` (e.g. ``"550 5.1.1 No such user"``) the next ``times`` times."""
        with self._lock:
            self._scripts[stage].append(_Script(reply=reply, times=times))

    def drop_after_data(self, *, times: int = 1) -> None:
        """Record the next ``times`` messages, then close the connection instead of answering the final dot."""
        with self._lock:
            self._drops += times

    def wait_for_messages(self, count: int, *, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages arrived; return them all (AssertionError on timeout)."""
        with self._lock:
            arrived = self._lock.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            assert arrived, f"expected {count} message(s), got {len(self.messages)} within {timeout}s"
            return list(self.messages)

    # called from the server thread ----------------------------------------------------------

    def _take(self, stage: str) -> str | None:
        with self._lock:
            scripts = self._scripts[stage]
            if not scripts:
                return None
            script = scripts[0]
            if script.times is not None:
                script.times -= 1
                if script.times <= 0:
                    scripts.pop(0)
            return script.reply

    def _take_drop(self) -> bool:
        with self._lock:
            if self._drops > 0:
                self._drops -= 1
                return True
            return False

    def _record(self, message: ReceivedMessage) -> None:
        with self._lock:
            self.messages.append(message)
            self._lock.notify_all()

    def _count_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = not self.refuse_logins and login in self.credentials and self.credentials[login] == password
        with self._lock:
            self.auth_attempts.append(AuthAttempt(mechanism=mechanism, login=login, success=ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def _bearer(self, user: str, token: str) -> AuthResult:
        ok = self.xoauth2 is not None and self.xoauth2(user, token)
        with self._lock:
            self.bearer_tokens.append(token)
            self.auth_attempts.append(AuthAttempt(mechanism="XOAUTH2", login=user, success=ok))
        if ok:
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted")


def unused_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    return free_port()


@contextmanager
def silent_server() -> Iterator[int]:
    """Yield a loopback port that accepts TCP connections but never says a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # the kernel completes handshakes from the backlog; nobody ever reads or writes
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()
