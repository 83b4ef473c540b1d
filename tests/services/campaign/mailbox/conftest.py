"""Fixtures of the mailbox tests: a real dovecot, a world with sent emails, and a sender reading that mailbox."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from redis import Redis
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.db.models.brand import Sender
from libs.db.session import make_engine, system_session
from libs.settings import Environment
from libs.suppression import stored_hash_key
from services.campaign.inbound.events import Context
from services.campaign.mailbox.poller import Poller
from services.campaign.mailbox.settings import MailSettings
from tests.services.campaign.inbound.factories import add_message, create_world
from tests.support.imap import DovecotServer, require_dovecot
from tests.support.world import World

SECRET_KEY = "mailbox-tests-secret-key"
LOGIN = "jane@acme.example"
PASSWORD = "imap-password-1234"


@dataclass
class Mailroom:
    """What a mailbox test works with: the IMAP server, the world, its sent messages and the sender."""

    imap: DovecotServer
    engine: Engine
    world: World
    messages: list[uuid.UUID]
    sender_id: uuid.UUID

    def reply(self, n: int, *, to: int = 0, message_id: str | None = None) -> bytes:
        """A reply to sent message ``to`` with its own Message-ID (``<reply-n@example.com>`` by default)."""
        ours = self.messages[to % len(self.messages)]
        mid = message_id or f"<reply-{n}@example.com>"
        return (
            f"From: Lead <lead0@example.com>\r\nTo: {LOGIN}\r\nSubject: Re: hello {n}\r\n"
            f"Message-ID: {mid}\r\nIn-Reply-To: <{ours}@acme.example>\r\n"
            f"References: <{ours}@acme.example>\r\n\r\nSounds good, tell me more ({n}).\r\n"
        ).encode()

    def count(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def mailbox(self) -> Any:
        with self.engine.connect() as conn:
            return (
                conn.execute(sa.text("SELECT * FROM mailboxes WHERE sender_id = :s"), {"s": self.sender_id})
                .mappings()
                .first()
            )

    def events(self) -> int:
        return int(self.count("SELECT count(*) FROM inbound_events WHERE source = 'email'"))


def wait_for(check: Callable[[], Any], *, timeout: float = 20.0, every: float = 0.05) -> Any:
    """Return ``check()``'s first truthy value, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not true within {timeout} s: {check}")


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([SECRET_KEY])


@pytest.fixture
def imap() -> Iterator[DovecotServer]:
    require_dovecot()
    with DovecotServer(users={LOGIN: PASSWORD}) as server:
        yield server


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=5)
    yield engine
    engine.dispose()


def mail_env(database_url: str, redis_url: str) -> dict[str, str]:
    """The poller's environment in these tests: short leases and passes, fast backoff."""
    return {
        "SDR_ENV": "test",
        "SDR_DATABASE_URL": database_url,
        "SDR_REDIS_URL": redis_url,
        "SDR_SECRET_KEY": SECRET_KEY,
        "SDR_MAIL_LEASE_SECONDS": "3",
        "SDR_MAIL_DISCOVER_INTERVAL": "0.3",
        "SDR_MAIL_POLL_INTERVAL": "0.5",
        "SDR_MAIL_BACKOFF_BASE": "0.2",
        "SDR_MAIL_TIMEOUT": "10",
    }


@pytest.fixture
def mail_settings(database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> MailSettings:
    for name, value in mail_env(database_url, redis_url).items():
        monkeypatch.setenv(name, value)
    return MailSettings(env=Environment.TEST)


def make_mailroom(
    imap: DovecotServer, engine: Engine, box: SecretBox, *, password: str = PASSWORD, folder: str | None = None
) -> Mailroom:
    """A world with three sent emails and an email sender reading ``imap``'s mailbox."""
    world = create_world(engine, box, leads=3)
    messages = [add_message(engine, world, lead=i, step=0) for i in range(3)]
    with system_session(engine) as s:
        sender = Sender(
            org_id=world.org_id,
            brand_id=world.brand_id,
            kind="email",
            from_address=LOGIN,
            smtp_host="127.0.0.1",
            smtp_port=1025,
            smtp_security="none",
            imap_host=imap.host,
            imap_port=imap.port,
            imap_tls="none",
            imap_username=LOGIN,
            imap_password_encrypted=box.encrypt(password),
            imap_password_last4=password[-4:],
            imap_folder=folder,
        )
        s.add(sender)
        s.flush()
        sender_id = sender.id
    return Mailroom(imap=imap, engine=engine, world=world, messages=messages, sender_id=sender_id)


@pytest.fixture
def mailroom(imap: DovecotServer, engine: Engine, box: SecretBox) -> Mailroom:
    return make_mailroom(imap, engine, box)


@pytest.fixture
def start_poller(mail_settings: MailSettings, engine: Engine, redis: Redis) -> Iterator[Callable[..., Poller]]:
    """Start pollers in threads of this process; every one is stopped when the test ends."""
    started: list[tuple[Poller, threading.Thread]] = []

    def start(**overrides: Any) -> Poller:
        settings = mail_settings.model_copy(update=overrides)
        ctx = Context.from_settings(settings, suppression_key=stored_hash_key(engine, settings))
        poller = Poller(settings, engine, redis, ctx)
        thread = threading.Thread(target=poller.run, daemon=True)
        thread.start()
        started.append((poller, thread))
        return poller

    yield start
    for poller, thread in started:
        poller.close()
        thread.join(timeout=30)


@pytest.fixture
def imap_no_idle() -> Iterator[DovecotServer]:
    require_dovecot()
    with DovecotServer(users={LOGIN: PASSWORD}, idle=False) as server:
        yield server
