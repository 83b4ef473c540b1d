"""DKIM in the worker: mail sent through the loopback SMTP server verifies with dkimpy, the key served by DNS."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import dkim as dkimpy
import pytest
import sqlalchemy as sa
from redis import Redis

from libs.crypto import SecretBox
from libs.db.models import Organization
from libs.db.models.brand import Sender
from libs.db.models.deliverability import DkimKey, SenderSigning
from libs.db.session import system_session
from libs.deliverability import dkim
from libs.deliverability.dns_preflight import DnsConfig, Lookups, make_resolver
from services.worker import jobs
from services.worker.channels.email import DkimSigning, OAuthLogins, SmtpAccount, SmtpTransport
from services.worker.channels.outcome import Outcome
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import create_world
from tests.support.dns import DnsServer, dns_server, txt
from tests.support.smtp import SmtpServer

DOMAIN = "acme.example"  # the factories' sender is sam@acme.example
SELECTOR = "tw202612"
PAIR = dkim.generate()
PREVIOUS_SELECTOR = "tw202611"
PREVIOUS = dkim.generate()


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with dns_server({f"{SELECTOR}._domainkey.{DOMAIN}": [txt(dkim.record_value(PAIR.public_key))]}) as server:
        yield server


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """Everything logged so far: stdout, stderr and the logging records."""

    def read() -> str:
        captured = capsys.readouterr()
        return captured.out + captured.err + caplog.text

    return read


def _verifies(data: bytes, dns: DnsServer) -> bool:
    lookups = Lookups(make_resolver(DnsConfig(nameservers=(f"127.0.0.1:{dns.port}",), timeout=1)))
    return bool(dkimpy.verify(data, dnsfunc=lookups.dkim_txt))


def _store_key(
    engine: sa.Engine,
    org_id: uuid.UUID,
    box: SecretBox,
    domain: str = DOMAIN,
    *,
    previous: dkim.KeyPair | None = None,
    rotated_at: datetime | None = None,
) -> None:
    replaced = dkim.seal(box, org_id, domain, previous.private_pem) if previous else None
    with system_session(engine) as s:
        s.add(
            DkimKey(
                org_id=org_id,
                domain=domain,
                selector=SELECTOR,
                private_key_encrypted=dkim.seal(box, org_id, domain, PAIR.private_pem),
                public_key=PAIR.public_key,
                created_at=rotated_at or datetime.now(UTC),
                previous_selector=PREVIOUS_SELECTOR if previous else None,
                previous_private_key_encrypted=replaced,
            )
        )


def _email_sender_id(engine: sa.Engine, org_id: uuid.UUID) -> uuid.UUID:
    with system_session(engine) as s:
        return s.execute(sa.select(Sender.id).where(Sender.org_id == org_id, Sender.kind == "email")).scalar_one()


def test_mail_the_worker_sends_is_signed_and_verifies_with_the_key_served_by_dns(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer, dns: DnsServer
) -> None:
    world = create_world(engine, channels=("email", "email"), smtp=(smtp.host, smtp.port))
    _store_key(engine, world.org_id, ctx.box)
    drain(ctx, redis)
    assert [r.status for r in messages(engine, world)] == ["sent", "sent"]
    assert len(smtp.messages) == 2
    for received in smtp.messages:
        assert received.data.startswith(b"DKIM-Signature: ")
        assert _verifies(received.data, dns)
        header = received.data.split(b"\r\n\r\n")[0].decode()
        assert f"d={DOMAIN}" in header
        assert f"s={SELECTOR}" in header
    second = smtp.messages[1].data.split(b"\r\n\r\n")[0].decode().split("h=")[1].split(";")[0]
    for name in ("from", "to", "subject", "date", "message-id", "in-reply-to", "references", "list-unsubscribe"):
        assert name in second.replace("\r\n", "").replace(" ", "").split(":")
    assert dns.queries[f"{SELECTOR}._domainkey.{DOMAIN}"] >= 2


def test_after_a_rotation_mail_is_signed_with_both_keys_for_a_week_then_the_new_one_only(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer, dns: DnsServer
) -> None:
    dns.set(f"{PREVIOUS_SELECTOR}._domainkey.{DOMAIN}", [txt(dkim.record_value(PREVIOUS.public_key))])
    lookups = Lookups(make_resolver(DnsConfig(nameservers=(f"127.0.0.1:{dns.port}",), timeout=1)))
    recent = create_world(engine, smtp=(smtp.host, smtp.port))
    _store_key(engine, recent.org_id, ctx.box, previous=PREVIOUS)
    drain(ctx, redis)
    (received,) = smtp.wait_for_messages(1)
    head = received.data.split(b"\r\n\r\n")[0]
    assert head.count(b"DKIM-Signature: ") == 2
    verifier = dkimpy.DKIM(received.data)
    assert verifier.verify(idx=0, dnsfunc=lookups.dkim_txt)
    assert verifier.verify(idx=1, dnsfunc=lookups.dkim_txt)
    assert {f"s={SELECTOR}", f"s={PREVIOUS_SELECTOR}"} <= set(head.decode().replace(";", " ").split())
    old = create_world(engine, smtp=(smtp.host, smtp.port))
    _store_key(engine, old.org_id, ctx.box, previous=PREVIOUS, rotated_at=datetime.now(UTC) - timedelta(days=8))
    drain(ctx, redis)
    data = smtp.wait_for_messages(2)[1].data
    assert data.split(b"\r\n\r\n")[0].count(b"DKIM-Signature: ") == 1
    assert _verifies(data, dns)


def test_a_sender_whose_own_server_signs_is_sent_as_it_is(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, smtp=(smtp.host, smtp.port))
    _store_key(engine, world.org_id, ctx.box)
    with system_session(engine) as s:
        s.add(SenderSigning(sender_id=_email_sender_id(engine, world.org_id), org_id=world.org_id, dkim="own_server"))
    drain(ctx, redis)
    (received,) = smtp.messages
    assert b"DKIM-Signature" not in received.data


def test_no_key_for_the_domain_sends_unsigned_and_another_organizations_key_is_never_used(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, smtp=(smtp.host, smtp.port))
    other = uuid.uuid4()
    with system_session(engine) as s:
        s.add(Organization(id=other, name="Other"))
    _store_key(engine, other, ctx.box)  # same domain, another organization
    _store_key(engine, world.org_id, ctx.box, domain="other-domain.example")
    drain(ctx, redis)
    (received,) = smtp.messages
    assert b"DKIM-Signature" not in received.data
    assert [r.status for r in messages(engine, world)] == ["sent"]


def test_a_key_that_does_not_open_sends_unsigned_and_says_why_without_the_key(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer, logs: Callable[[], str]
) -> None:
    world = create_world(engine, smtp=(smtp.host, smtp.port))
    _store_key(engine, world.org_id, SecretBox(["a key this worker does not hold"]))
    drain(ctx, redis)
    (received,) = smtp.messages
    assert b"DKIM-Signature" not in received.data
    assert [r.status for r in messages(engine, world)] == ["sent"]
    text = logs()
    assert "dkim_sign_failed" in text
    assert "SecretBoxError" in text


def test_the_private_key_never_appears_in_a_log_line_of_a_send(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer, logs: Callable[[], str]
) -> None:
    world = create_world(engine, smtp=(smtp.host, smtp.port))
    _store_key(engine, world.org_id, ctx.box)
    drain(ctx, redis)
    assert smtp.messages[0].data.startswith(b"DKIM-Signature: ")
    text = logs()
    assert "dkim_sign_failed" not in text
    assert text  # the worker logged its send
    lines = [line for line in PAIR.private_pem.splitlines() if "PRIVATE KEY" not in line]
    assert "PRIVATE KEY" not in text
    assert not any(line in text for line in lines)


def test_an_explicit_signer_replaces_the_process_one(ctx: jobs.Context, smtp: SmtpServer) -> None:
    calls: list[bytes] = []

    def signer(data: bytes) -> bytes:
        calls.append(data)
        return b"X-Signed: yes\r\n" + data

    transport = SmtpTransport(timeout=2, signer=signer)
    message = b"From: a@acme.example\r\nTo: b@x.example\r\nSubject: s\r\n\r\nhi\r\n"
    try:
        result = transport.send(
            SmtpAccount(smtp.host, smtp.port), message, mail_from="a@acme.example", rcpt_to="b@x.example"
        )
    finally:
        transport.close()
    assert result.outcome is Outcome.SENT
    assert calls == [message]
    assert smtp.messages[0].data.startswith(b"X-Signed: yes\r\n")


def test_a_message_naming_no_ledger_row_is_not_signed(ctx: jobs.Context) -> None:
    message = b"From: sam@acme.example\r\nTo: b@x.example\r\nSubject: s\r\n\r\nhi\r\n"
    assert DkimSigning(ctx)(message) == message


def test_the_send_context_signs_its_mail_and_gives_its_oauth_tokens(ctx: jobs.Context) -> None:
    assert isinstance(ctx.smtp.signer, DkimSigning)
    assert ctx.smtp.signer.keys is ctx
    assert isinstance(ctx.smtp.logins, OAuthLogins)
    assert ctx.smtp.logins.keys is ctx
