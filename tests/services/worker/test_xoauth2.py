"""Mail of a sender connected with OAuth 2.0 logs in with AUTH XOAUTH2 and the current access token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from redis import Redis

from libs.db.base import utcnow
from libs.db.session import system_session
from services.worker import jobs
from services.worker.channels.email import SmtpAccount, SmtpTransport, build_email
from services.worker.channels.outcome import Outcome
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import create_world
from tests.services.worker.test_email_channel import EMAIL
from tests.support.oidc_provider import OidcProviderServer, OidcUser, oidc_provider
from tests.support.smtp import SmtpServer
from tests.support.world import World

LOGIN = "sam@acme.example"


@pytest.fixture
def provider() -> Iterator[OidcProviderServer]:
    with oidc_provider(user=OidcUser(subject="sub-sam", email=LOGIN)) as server:
        yield server


@pytest.fixture
def xsmtp(provider: OidcProviderServer) -> Iterator[SmtpServer]:
    """A loopback SMTP server that takes XOAUTH2 tokens the loopback provider says are live."""
    with SmtpServer(xoauth2=provider.bearer_check, auth_required=True) as server:
        yield server


def _connected(
    engine: sa.Engine, ctx: jobs.Context, smtp: SmtpServer, provider: OidcProviderServer
) -> tuple[World, uuid.UUID, str]:
    world = create_world(engine, smtp=(smtp.host, smtp.port))
    with system_session(engine) as s:
        sender_id = s.execute(
            sa.text("SELECT id FROM senders WHERE org_id = :o AND kind = 'email'"), {"o": world.org_id}
        ).scalar_one()
    return world, sender_id, provider.connect_sender(engine, ctx.box, sender_id)


def _expire(engine: sa.Engine, sender_id: uuid.UUID, *, seconds: int) -> None:
    with system_session(engine) as s:
        s.execute(
            sa.text("UPDATE sender_oauth SET expires_at = :t WHERE sender_id = :s"),
            {"t": utcnow() + timedelta(seconds=seconds), "s": sender_id},
        )


def test_the_worker_sends_with_xoauth2_and_the_current_access_token(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, xsmtp: SmtpServer, provider: OidcProviderServer
) -> None:
    world, _, token = _connected(engine, ctx, xsmtp, provider)
    drain(ctx, redis)
    assert [r.status for r in messages(engine, world)] == ["sent"]
    [message] = xsmtp.wait_for_messages(1)
    assert message.login == LOGIN
    assert [(a.mechanism, a.login, a.success) for a in xsmtp.auth_attempts] == [("XOAUTH2", LOGIN, True)]
    assert xsmtp.bearer_tokens == [token]
    assert provider.refreshes == 0


def test_an_access_token_near_expiry_is_refreshed_once_before_the_send(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, xsmtp: SmtpServer, provider: OidcProviderServer
) -> None:
    world, sender_id, token = _connected(engine, ctx, xsmtp, provider)
    _expire(engine, sender_id, seconds=120)  # under the five-minute margin
    drain(ctx, redis)
    assert [r.status for r in messages(engine, world)] == ["sent"]
    assert provider.refreshes == 1
    assert xsmtp.bearer_tokens == [provider.access_tokens[-1]]
    assert xsmtp.bearer_tokens != [token]
    with system_session(engine) as s:
        row = s.execute(sa.text("SELECT * FROM sender_oauth WHERE sender_id = :s"), {"s": sender_id}).one()
    assert row.refreshed_at is not None
    assert row.expires_at > utcnow() + timedelta(minutes=30)
    assert provider.access_tokens[-1] not in row.access_token_encrypted


def test_a_revoked_refresh_token_fails_the_mail_and_marks_the_sender_for_reconnection(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, xsmtp: SmtpServer, provider: OidcProviderServer
) -> None:
    world, sender_id, _ = _connected(engine, ctx, xsmtp, provider)
    _expire(engine, sender_id, seconds=-10)
    provider.revoke_refresh_tokens()
    drain(ctx, redis)
    [row] = messages(engine, world)
    assert row.error_code == "oauth_reconnect"
    assert row.status != "sent"
    assert xsmtp.auth_attempts == []
    assert provider.token_refusals == ["refresh_token"]
    with system_session(engine) as s:
        status, reason = s.execute(
            sa.text("SELECT status, reason FROM sender_oauth WHERE sender_id = :s"), {"s": sender_id}
        ).one()
    assert status == "reconnect"
    assert "invalid_grant" in reason


def test_a_token_the_server_refuses_is_a_permanent_auth_failure(provider: OidcProviderServer) -> None:
    class Refused:
        def token(self, sender_id: uuid.UUID) -> str:
            return "at-not-issued"  # a token the provider never issued

    with SmtpServer(xoauth2=provider.bearer_check) as server:
        transport = SmtpTransport(timeout=5, logins=Refused())  # type: ignore[arg-type]
        account = SmtpAccount(server.host, server.port, username=LOGIN, sender_id=uuid.uuid4())
        result = transport.send(account, build_email(EMAIL), mail_from=LOGIN, rcpt_to=EMAIL.to_address)
        transport.close()
    assert (result.outcome, result.code) == (Outcome.PERMANENT, "smtp_535")
    assert server.bearer_tokens == ["at-not-issued"]
    assert server.messages == []
