"""The poller reads the mailbox of an OAuth sender: XOAUTH2 to dovecot, which asks the provider about the token."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.db.base import utcnow
from libs.db.session import system_session
from services.campaign.mailbox.poller import Poller
from tests.services.campaign.mailbox.conftest import LOGIN, PASSWORD, Mailroom, make_mailroom, wait_for
from tests.support.imap import DovecotServer, require_dovecot
from tests.support.oidc_provider import OidcProviderServer, OidcUser, oidc_provider


@pytest.fixture
def provider() -> Iterator[OidcProviderServer]:
    with oidc_provider(user=OidcUser(subject="sub-jane", email=LOGIN)) as server:
        yield server


@pytest.fixture
def room(provider: OidcProviderServer, engine: Engine, box: SecretBox) -> Iterator[tuple[Mailroom, str]]:
    """A mailroom on a dovecot that takes XOAUTH2, its sender connected with OAuth and no IMAP password."""
    require_dovecot()
    with DovecotServer(users={LOGIN: PASSWORD}, introspection_url=f"{provider.issuer}/introspect") as imap:
        mailroom = make_mailroom(imap, engine, box)
        token = provider.connect_sender(engine, box, mailroom.sender_id)
        with system_session(engine) as s:
            s.execute(
                sa.text("UPDATE senders SET imap_password_encrypted = NULL, imap_password_last4 = NULL WHERE id = :s"),
                {"s": mailroom.sender_id},
            )
        yield mailroom, token


def _expire(room: Mailroom, *, seconds: int) -> None:
    with system_session(room.engine) as s:
        s.execute(
            sa.text("UPDATE sender_oauth SET expires_at = :t WHERE sender_id = :s"),
            {"t": utcnow() + timedelta(seconds=seconds), "s": room.sender_id},
        )


def test_the_poller_logs_in_with_xoauth2_and_reads_mail(
    room: tuple[Mailroom, str], provider: OidcProviderServer, start_poller: Callable[..., Poller]
) -> None:
    mailroom, token = room
    mailroom.imap.append(LOGIN, mailroom.reply(1))
    start_poller()
    wait_for(lambda: mailroom.events() == 1)
    assert f"user=<{LOGIN}>, method=XOAUTH2" in mailroom.imap.log()
    assert "method=PLAIN" not in mailroom.imap.log().split("method=XOAUTH2")[-1]
    assert token in provider.introspections
    assert provider.refreshes == 0
    assert mailroom.mailbox()["state"] == "active"


def test_a_token_near_expiry_is_refreshed_before_the_login(
    room: tuple[Mailroom, str], provider: OidcProviderServer, start_poller: Callable[..., Poller]
) -> None:
    mailroom, token = room
    _expire(mailroom, seconds=60)
    mailroom.imap.append(LOGIN, mailroom.reply(1))
    start_poller()
    wait_for(lambda: mailroom.events() == 1)
    assert provider.refreshes == 1
    assert provider.introspections[0] == provider.access_tokens[-1]
    assert token not in provider.introspections


def test_a_revoked_refresh_token_pauses_the_mailbox_with_the_reason(
    room: tuple[Mailroom, str], provider: OidcProviderServer, start_poller: Callable[..., Poller]
) -> None:
    mailroom, _ = room
    _expire(mailroom, seconds=-1)
    provider.revoke_refresh_tokens()
    mailroom.imap.append(LOGIN, mailroom.reply(1))
    start_poller()
    paused = wait_for(lambda: (row := mailroom.mailbox()) and row["state"] == "paused" and row)
    assert "refused the refresh token" in paused["paused_reason"]
    assert "invalid_grant" in paused["paused_reason"]
    time.sleep(1.5)  # several discovery passes: nobody asks the provider again
    assert provider.token_refusals == ["refresh_token"]
    assert provider.introspections == []
    assert mailroom.events() == 0
    status = mailroom.count("SELECT status FROM sender_oauth WHERE sender_id = :s", s=mailroom.sender_id)
    assert status == "reconnect"
