"""Follow email senders' mailboxes over IMAP and feed every new message to the inbound path.

One :class:`Poller` per process claims mailboxes by lease (``cursor.claim``) and runs one
:class:`Reader` thread per claimed mailbox. A reader logs in, selects the folder, and:

- compares the folder's UIDVALIDITY with the cursor's; a new one (the folder was recreated, or
  first seen) starts the cursor over at UID 0, and the inbound events' dedupe key (the email's
  ``Message-ID`` and our message) keeps every email stored once;
- fetches the UIDs above ``last_uid`` in order, and for each one stores the inbound event and
  moves the cursor past it in one transaction, fenced by the lease; the jobs are enqueued after
  the commit. A process killed anywhere leaves either both or neither, so the next reader
  resumes at the first UID not stored: no gap, no duplicate (and it enqueues the job of the last
  stored event again while that event waits: the kill may have come before its enqueue);
- waits with IMAP IDLE when the server's CAPABILITY has it (renewed every third of the lease,
  when the lease is renewed too), else looks again every ``SDR_MAIL_POLL_INTERVAL``.

A refused login (``LoginError``: AUTHENTICATIONFAILED and kin) pauses the mailbox with the
server's reason and the reader ends: no poller takes a paused mailbox until a member resumes it.
A sender connected with OAuth 2.0 (``auth_mode`` ``oauth2``) logs in with XOAUTH2 and its
current access token (``libs.oauth_tokens``, renewed when near expiry); an authorization that
must be connected again (the provider refused the refresh token) pauses the mailbox with
that reason, and connecting the sender again makes it active.
Network and server errors wait (doubling from ``SDR_MAIL_BACKOFF_BASE`` up to
``SDR_MAIL_BACKOFF_MAX``) and try again; the error is kept in ``last_error``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from redis import Redis
from rq.job import Job as RqJob
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from libs import jobs as registry
from libs import netpolicy, oauth_tokens
from libs.crypto import SecretBox, SecretBoxError
from libs.db.models.brand import AuthMode, ImapTls, MailboxState
from libs.db.session import system_session
from libs.queue import enqueue_many
from services.campaign.inbound.email import receive
from services.campaign.inbound.events import Context, Effects
from services.campaign.mailbox import cursor
from services.campaign.mailbox.settings import MailSettings

log = structlog.get_logger(__name__)

DEFAULT_PORTS = {ImapTls.TLS: 993, ImapTls.STARTTLS: 143, ImapTls.NONE: 143}


class Paused(Exception):
    """The mailbox must not be read again until a member resumes it; ``str()`` is the reason shown."""


class Stopped(Exception):
    """The reader must end: stop asked, lease lost, mailbox paused or its IMAP settings removed."""


@dataclass
class Reader:
    """Reads one mailbox while this process (``owner``) holds its lease."""

    mailbox_id: uuid.UUID
    owner: str
    settings: MailSettings
    engine: Engine
    redis: Redis
    ctx: Context
    stop: threading.Event
    ssl_context: ssl.SSLContext
    log: Any = field(init=False)

    def __post_init__(self) -> None:
        self.log = log.bind(mailbox_id=str(self.mailbox_id))

    # the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Read until stopped, paused or the lease is lost; then give the lease back."""
        delay = self.settings.mail_backoff_base
        try:
            while not self.stop.is_set():
                target = self._target()
                try:
                    self._session(target)
                    delay = self.settings.mail_backoff_base
                except (OSError, IMAPClientError, ssl.SSLError, oauth_tokens.TokenUnavailable) as exc:
                    reason = _describe(exc)
                    self.log.warning("mailbox_error", error=reason, retry_in=delay)
                    with system_session(self.engine) as session:
                        cursor.polled(session, self.mailbox_id, self.owner, error=reason)
                    self._wait(delay)
                    delay = min(delay * 2, self.settings.mail_backoff_max)
        except Paused as exc:
            self.log.warning("mailbox_paused", reason=str(exc))
            with system_session(self.engine) as session:
                cursor.pause(session, self.mailbox_id, self.owner, reason=str(exc))
        except (Stopped, cursor.LeaseLost):
            self.log.info("mailbox_reader_stopped")
        finally:
            with system_session(self.engine) as session:
                cursor.release(session, self.mailbox_id, self.owner)

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds`` (interrupted by a stop), renewing the lease on the way."""
        remaining = seconds
        while remaining > 0:
            step = min(remaining, self.settings.renew_every)
            if self.stop.wait(step):
                raise Stopped
            remaining -= step
            self._renew()

    def _renew(self) -> None:
        with system_session(self.engine) as session:
            if not cursor.renew(session, self.mailbox_id, self.owner, lease=self.settings.mail_lease_seconds):
                raise Stopped

    def _target(self) -> cursor.Target:
        with system_session(self.engine) as session:
            target = cursor.target(session, self.mailbox_id)
        if target is None or target.state != MailboxState.ACTIVE.value or not target.host:
            raise Stopped
        return target

    # one logged-in session -------------------------------------------------------------------

    def _session(self, target: cursor.Target) -> None:
        client = self._connect(target)
        try:
            info = client.select_folder(target.folder, readonly=True)
            uidvalidity = int(info[b"UIDVALIDITY"])
            if target.uidvalidity != uidvalidity:
                self.log.info("mailbox_uidvalidity", previous=target.uidvalidity, current=uidvalidity)
                with system_session(self.engine) as session:
                    cursor.start_over(session, self.mailbox_id, self.owner, uidvalidity=uidvalidity)
                last_uid = 0
            else:
                last_uid = target.last_uid
                self._requeue(target.last_event_id)
            idle = b"IDLE" in client.capabilities()
            while not self.stop.is_set():
                last_uid = self._fetch_new(client, uidvalidity, last_uid)
                with system_session(self.engine) as session:
                    cursor.polled(session, self.mailbox_id, self.owner)
                if idle:
                    self._idle(client)
                else:
                    self._wait(self.settings.mail_poll_interval)
                self._renew()
                if self._target().login != target.login:
                    self.log.info("mailbox_settings_changed")
                    return
        finally:
            _logout(client)

    def _connect(self, target: cursor.Target) -> IMAPClient:
        tls = ImapTls(target.tls or ImapTls.TLS)
        port = target.port or DEFAULT_PORTS[tls]
        assert target.host is not None
        self._check_address(target.host, port)
        client = IMAPClient(
            target.host,
            port=port,
            ssl=tls is ImapTls.TLS,
            ssl_context=self.ssl_context,
            timeout=self.settings.mail_timeout,
        )
        try:
            if tls is ImapTls.STARTTLS:
                client.starttls(self.ssl_context)
            try:
                if target.auth_mode == AuthMode.OAUTH2.value:
                    client.oauth2_login(target.username or target.from_address or "", self._token(target))
                else:
                    client.login(target.username or "", self._password(target))
            except LoginError as exc:
                raise Paused(f"{target.host} refused the login: {_describe(exc)}") from exc
        except BaseException:
            _logout(client)
            raise
        return client

    def _check_address(self, host: str, port: int) -> None:
        """Refuse a host that resolves to a non-public address, unless private hosts are allowed."""
        if self.settings.private_hosts_allowed:
            return
        for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            why = netpolicy.refusal(str(info[4][0]))
            if why is not None:
                raise Paused(f"{host} resolves to an address that is not public ({why}).")

    def _token(self, target: cursor.Target) -> str:
        box: SecretBox = self.ctx.box
        try:
            return oauth_tokens.access_token(self.engine, box, target.sender_id)
        except oauth_tokens.NeedsReconnect as exc:
            raise Paused(str(exc)) from exc

    def _password(self, target: cursor.Target) -> str:
        if not target.username or not target.password_encrypted:
            raise Paused("The sender has no IMAP username and password.")
        box: SecretBox = self.ctx.box
        try:
            return box.decrypt(target.password_encrypted)
        except SecretBoxError as exc:
            raise Paused("The stored IMAP password cannot be decrypted (was the secret key changed?).") from exc

    def _idle(self, client: IMAPClient) -> None:
        """Wait in IDLE until the server says something, the renewal is due or a stop is asked."""
        wait = min(self.settings.mail_idle_seconds, self.settings.renew_every)
        client.idle()
        try:
            remaining = wait
            while remaining > 0 and not self.stop.is_set():
                step = min(remaining, 1.0)
                if client.idle_check(timeout=step):
                    break
                remaining -= step
        finally:
            client.idle_done()

    def _requeue(self, event_id: uuid.UUID | None) -> None:
        """Enqueue again the job of the last event stored, if it is still waiting: a poller killed
        between that commit and its enqueue lost it (the job is safe to run twice)."""
        with system_session(self.engine) as session:
            waiting = cursor.unfinished(session, event_id)
        job_id = f"inbound-{event_id}"
        if waiting and event_id is not None and not RqJob.exists(job_id, connection=self.redis):
            enqueue_many(self.redis, [registry.PROCESS_INBOUND_EMAIL.spec(str(event_id), job_id=job_id)])
            self.log.info("mailbox_job_requeued", event_id=str(event_id))

    def _fetch_new(self, client: IMAPClient, uidvalidity: int, last_uid: int) -> int:
        """Feed every message above ``last_uid``, in UID order; return the new ``last_uid``."""
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
        batch = self.settings.mail_fetch_batch
        for start in range(0, len(uids), batch):
            chunk = uids[start : start + batch]
            fetched = client.fetch(chunk, [b"BODY.PEEK[]"])
            for uid in chunk:
                if self.stop.is_set():
                    raise Stopped
                raw = fetched.get(uid, {}).get(b"BODY[]")
                self._feed(uid, uidvalidity, raw if isinstance(raw, bytes) else b"")
                last_uid = uid
        return last_uid

    def _feed(self, uid: int, uidvalidity: int, raw: bytes) -> None:
        """Store one message through the inbound path and move the cursor past it, in one transaction."""
        effects = Effects()
        with system_session(self.engine) as session:
            outcome = receive(session, self.ctx, effects, raw)
            cursor.advance(
                session, self.mailbox_id, self.owner, uidvalidity=uidvalidity, uid=uid, event_id=outcome.event_id
            )
        if effects.jobs:
            enqueue_many(self.redis, effects.jobs)
        self.log.info(
            "mailbox_message",
            uid=uid,
            uidvalidity=uidvalidity,
            outcome=outcome.status,
            kind=outcome.kind.value if outcome.kind else None,
            event_id=str(outcome.event_id) if outcome.event_id else None,
        )


class Poller:
    """Claims mailboxes no other process reads and runs a :class:`Reader` for each."""

    def __init__(
        self,
        settings: MailSettings,
        engine: Engine,
        redis: Redis,
        ctx: Context,
        *,
        owner: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.redis = redis
        self.ctx = ctx
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"
        self.ssl_context = ssl_context or settings.ssl_context()
        self.stop = threading.Event()
        self.readers: dict[uuid.UUID, threading.Thread] = {}

    def run(self, *, until: Callable[[], bool] | None = None) -> None:
        """Claim and read mailboxes until :meth:`close` (or ``until()`` is true); then stop every reader."""
        log.info("mail_poller_started", owner=self.owner)
        try:
            while not self.stop.is_set() and not (until and until()):
                try:
                    self.discover()
                except DBAPIError as exc:  # PostgreSQL away: the readers' leases run out, the next pass retries
                    log.warning("mail_poller_database_error", error=type(exc.orig).__name__)
                self.stop.wait(self.settings.mail_discover_interval)
        finally:
            self.stop.set()
            for thread in list(self.readers.values()):
                thread.join(timeout=self.settings.mail_timeout + 5)
            log.info("mail_poller_stopped", owner=self.owner)

    def discover(self) -> list[uuid.UUID]:
        """One pass: add missing mailbox rows, start readers on free mailboxes; return the ids taken."""
        self.readers = {k: t for k, t in self.readers.items() if t.is_alive()}
        room = self.settings.mail_max_mailboxes - len(self.readers)
        with system_session(self.engine) as session:
            cursor.sync(session)
            taken = (
                cursor.claim(
                    session, self.owner, lease=self.settings.mail_lease_seconds, limit=room, skip=list(self.readers)
                )
                if room > 0
                else []
            )
        for mailbox_id in taken:
            reader = Reader(
                mailbox_id,
                owner=self.owner,
                settings=self.settings,
                engine=self.engine,
                redis=self.redis,
                ctx=self.ctx,
                stop=self.stop,
                ssl_context=self.ssl_context,
            )
            thread = threading.Thread(target=reader.run, name=f"mailbox-{mailbox_id}", daemon=True)
            self.readers[mailbox_id] = thread
            thread.start()
            log.info("mailbox_claimed", mailbox_id=str(mailbox_id), owner=self.owner)
        return taken

    def close(self) -> None:
        """Ask every reader to stop (the run loop returns once they have)."""
        self.stop.set()


def _describe(exc: BaseException) -> str:
    """The server's words (or the error's), as text: imapclient hands them over as ``"b'...'"``."""
    text: Any = exc.args[0] if exc.args else exc
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text)
    if len(text) >= 3 and text[:2] in ("b'", 'b"') and text[-1] == text[1]:
        text = text[2:-1]
    return (text or type(exc).__name__)[:300]


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (OSError, IMAPClientError, ssl.SSLError):
        with contextlib.suppress(OSError):
            client.shutdown()
