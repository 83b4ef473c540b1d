"""Check an SMTP sender for real: connect, (START)TLS, EHLO, log in; report what the server said.

A sender connected with OAuth 2.0 logs in with AUTH XOAUTH2 and its access token.

Every socket operation has an explicit timeout (``smtplib`` has none by default), the host is
resolved once and the connection goes to the address that was checked (no DNS rebinding
between the check and the connect), and private addresses are refused unless allowed.
"""

from __future__ import annotations

import base64
import contextlib
import smtplib
import socket
import ssl
from dataclasses import dataclass, field

from libs import netpolicy
from libs.db.models.brand import SmtpSecurity
from libs.oauth_tokens import smtp_xoauth2

_REDACTED = "[redacted]"
_MAX_REPLY = 500


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """Where and how to connect, and who to log in as (the password in clear, in memory only)."""

    host: str
    port: int
    security: SmtpSecurity
    username: str | None
    password: str | None = field(repr=False)
    oauth_token: str | None = field(default=None, repr=False)
    """Set for a sender connected with OAuth 2.0: the login is AUTH XOAUTH2 with this access token."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """How far the check got: ``reachable`` is False when the server never answered."""

    verified: bool
    reachable: bool
    stage: str
    code: int | None
    reply: str | None


class AddressRefused(Exception):
    """The host resolves to an address the service may not connect to."""


class _PinnedSMTP(smtplib.SMTP):
    """SMTP that connects to an already-checked IP (``pinned_ip``), whatever the host name resolves to now."""

    pinned_ip = ""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self.pinned_ip, port), timeout, self.source_address)


class _PinnedSMTPSSL(smtplib.SMTP_SSL):
    """SMTPS to a pinned IP; the certificate is still checked against the host name."""

    pinned_ip = ""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.pinned_ip, port), timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname=self._host)  # type: ignore[attr-defined]


def resolve(host: str, port: int, *, allow_private: bool) -> str:
    """Resolve ``host`` to one IP to connect to.

    Raises:
        AddressRefused: an address is not public by ``libs.netpolicy`` (private, loopback,
            link-local, an IPv4 one of those inside NAT64 or 6to4 ...) and that is not allowed.
        OSError: the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise OSError(f"{host} does not resolve")
    if not allow_private:
        for address in addresses:
            why = netpolicy.refusal(address)
            if why is not None:
                raise AddressRefused(f"{host} resolves to an address that is not public ({why})")
    return addresses[0]


def _text(reply: bytes | str | None, target: ProbeTarget) -> str | None:
    if reply is None:
        return None
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return scrub(scrub(text, target.password), target.oauth_token)[:_MAX_REPLY]


def scrub(text: str, secret: str | None) -> str:
    """Remove ``secret`` (and its base64 forms, as AUTH sends it) from ``text``."""
    if not secret:
        return text
    for form in {secret, base64.b64encode(secret.encode()).decode()}:
        text = text.replace(form, _REDACTED)
    return text


def probe(
    target: ProbeTarget, *, ip: str, timeout: float, ssl_context: ssl.SSLContext, local_hostname: str = "localhost"
) -> ProbeResult:
    """Run the check against ``ip`` (already resolved from ``target.host``); never raises for SMTP outcomes."""
    stage = "connect"
    client: _PinnedSMTP | _PinnedSMTPSSL | None = None
    try:
        if target.security is SmtpSecurity.TLS:
            client = _PinnedSMTPSSL(local_hostname=local_hostname, timeout=timeout, context=ssl_context)
        else:
            client = _PinnedSMTP(local_hostname=local_hostname, timeout=timeout)
        client.pinned_ip = ip
        client._host = target.host  # type: ignore[union-attr]  # smtplib reads it for TLS SNI and checks
        code, banner = client.connect(target.host, target.port)
        if code != 220:
            return ProbeResult(False, True, stage, code, _text(banner, target))
        stage = "ehlo"
        code, reply = client.ehlo()
        if code != 250:
            return ProbeResult(False, True, stage, code, _text(reply, target))
        if target.security is SmtpSecurity.STARTTLS:
            stage = "tls"
            if not client.has_extn("starttls"):
                return ProbeResult(False, True, stage, None, "the server does not offer STARTTLS")
            code, reply = client.starttls(context=ssl_context)
            if code != 220:
                return ProbeResult(False, True, stage, code, _text(reply, target))
            stage = "ehlo"
            code, reply = client.ehlo()
        if target.username:
            stage = "auth"
            if not client.has_extn("auth"):
                return ProbeResult(False, True, stage, None, "the server does not offer AUTH on this connection")
            if target.oauth_token is not None:
                authobject = smtp_xoauth2(target.username, target.oauth_token)
                code, reply = client.auth("XOAUTH2", authobject, initial_response_ok=True)
            else:
                code, reply = client.login(target.username, target.password or "")
        result = ProbeResult(True, True, stage, code, _text(reply, target))
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
        return result
    except smtplib.SMTPResponseException as exc:
        return ProbeResult(False, True, stage, exc.smtp_code, _text(exc.smtp_error, target))
    except smtplib.SMTPNotSupportedError as exc:
        return ProbeResult(False, True, stage, None, _text(str(exc), target))
    except ssl.SSLError as exc:
        return ProbeResult(False, True, "tls", None, _text(f"TLS failed: {exc.reason or exc}", target))
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        reason = "timed out" if _timed_out(exc) else str(exc) or type(exc).__name__
        # A server that greeted us and then went away was reachable; one that never spoke was not.
        reachable = stage != "connect"
        return ProbeResult(False, reachable, stage, None, _text(reason, target))
    finally:
        if client is not None:
            client.close()


def _timed_out(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError) or "timed out" in str(seen):
            return True
        seen = seen.__context__
    return False
