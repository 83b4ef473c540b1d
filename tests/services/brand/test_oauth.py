"""Connecting an email sender with OAuth 2.0: PKCE against the loopback provider, single-use state, sealed tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from libs.crypto import SecretBox
from libs.db.base import utcnow
from libs.db.session import make_engine
from libs.oauth_tokens import NeedsReconnect, access_token
from libs.security import Role
from tests.services.brand.conftest import Actor
from tests.support.oidc_provider import OidcProviderServer, OidcUser, oidc_provider
from tests.support.smtp import SmtpServer


@pytest.fixture
def provider() -> Iterator[OidcProviderServer]:
    with oidc_provider() as server:
        yield server


def _set_client(actor: Actor, provider: OidcProviderServer) -> Any:
    return actor.put(
        "/api/credentials/oauth/generic",
        {
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "authorize_url": f"{provider.issuer}/authorize",
            "token_url": f"{provider.issuer}/token",
            "scope": "https://mail.google.com/",
        },
    )


def _oauth_sender(actor: Actor, provider: OidcProviderServer) -> tuple[str, str]:
    assert _set_client(actor, provider).status_code == 200
    brand = actor.create_brand()
    sender = actor.create_sender(
        brand["id"], kind="email", from_address="jane@acme.example", smtp_host="smtp.acme.example"
    )
    return brand["id"], sender["id"]


def _start(actor: Actor, brand_id: str, sender_id: str) -> str:
    r = actor.post(f"/api/brands/{brand_id}/senders/{sender_id}/oauth/start", {"provider": "generic"})
    assert r.status_code == 201, r.text
    return str(r.json()["authorize_url"])


def _authorize(url: str) -> dict[str, str]:
    """What a browser does: open the authorize URL; the provider redirects back with code and state."""
    r = httpx.get(url, follow_redirects=False, timeout=5)
    assert r.status_code == 302, r.text
    location = urlsplit(r.headers["location"])
    assert location.path == "/hooks/oauth/callback"
    return {k: v[-1] for k, v in parse_qs(location.query).items()}


def _tokens(engine: sa.Engine, sender_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM sender_oauth WHERE sender_id = :s"), {"s": sender_id}).first()


def test_full_flow_with_pkce_stores_sealed_tokens_and_sets_oauth2(
    alice: Actor, provider: OidcProviderServer, engine: sa.Engine, box: SecretBox
) -> None:
    brand_id, sender_id = _oauth_sender(alice, provider)
    url = _start(alice, brand_id, sender_id)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert "code_verifier" not in url

    back = _authorize(url)
    page = alice.client.get("/hooks/oauth/callback", params=back)
    assert page.status_code == 200, page.text
    assert "Connected" in page.text

    [call] = provider.token_calls
    assert call["form"]["grant_type"] == "authorization_code"
    assert call["form"]["code_verifier"]  # the provider checked it against the challenge (else invalid_grant)
    assert provider.token_refusals == []

    row = _tokens(engine, sender_id)
    issued = provider.access_tokens[-1]
    assert row.status == "connected"
    assert issued not in row.access_token_encrypted
    assert access_token(engine, box, uuid.UUID(sender_id)) == issued

    sender = alice.get(f"/api/brands/{brand_id}/senders/{sender_id}").json()
    assert sender["auth_mode"] == "oauth2"
    assert sender["oauth"]["status"] == "connected"
    assert issued not in str(sender)
    client = alice.get("/api/credentials/oauth/generic").json()
    assert client["client_secret"] == {"set": True, "last4": provider.client_secret[-4:]}
    assert provider.client_secret not in str(client)
    assert client["redirect_uri"].endswith("/hooks/oauth/callback")


def test_state_is_single_use(alice: Actor, provider: OidcProviderServer, engine: sa.Engine) -> None:
    brand_id, sender_id = _oauth_sender(alice, provider)
    back = _authorize(_start(alice, brand_id, sender_id))
    assert alice.client.get("/hooks/oauth/callback", params=back).status_code == 200
    again = alice.client.get("/hooks/oauth/callback", params=back)
    assert again.status_code == 400
    assert again.headers["content-type"].startswith("application/problem+json")
    assert "already used" in again.json()["detail"]
    assert again.json()["errors"][0]["field"] == "state"
    assert len(provider.token_calls) == 1


def test_expired_state_is_refused_and_nothing_stored(
    alice: Actor, provider: OidcProviderServer, engine: sa.Engine
) -> None:
    brand_id, sender_id = _oauth_sender(alice, provider)
    back = _authorize(_start(alice, brand_id, sender_id))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE oauth_authorizations SET expires_at = :t"), {"t": utcnow() - timedelta(seconds=1)})
    page = alice.client.get("/hooks/oauth/callback", params=back)
    assert page.status_code == 400
    assert "expired" in page.text
    assert provider.token_calls == []
    assert _tokens(engine, sender_id) is None
    assert alice.get(f"/api/brands/{brand_id}/senders/{sender_id}").json()["auth_mode"] == "password"


def test_provider_error_and_refused_code_store_nothing(
    alice: Actor, provider: OidcProviderServer, engine: sa.Engine
) -> None:
    brand_id, sender_id = _oauth_sender(alice, provider)
    back = _authorize(_start(alice, brand_id, sender_id))
    denied = alice.client.get("/hooks/oauth/callback", params={"state": back["state"], "error": "access_denied"})
    assert denied.status_code == 400
    assert "access_denied" in denied.json()["detail"]
    assert denied.json()["errors"][0]["field"] == "error"

    back = _authorize(_start(alice, brand_id, sender_id))
    bad = alice.client.get("/hooks/oauth/callback", params={"state": back["state"], "code": "not-the-code"})
    assert bad.status_code == 502
    assert bad.json()["errors"][0]["field"] == "code"
    assert provider.client_secret not in bad.text
    assert provider.token_refusals == ["code"]
    assert _tokens(engine, sender_id) is None
    assert alice.client.get("/hooks/oauth/callback", params={"code": "x"}).status_code == 400


def test_start_needs_a_stored_client_and_a_known_provider(alice: Actor) -> None:
    brand = alice.create_brand()
    sender = alice.create_sender(brand["id"], kind="email", from_address="a@acme.example", smtp_host="smtp.x.example")
    path = f"/api/brands/{brand['id']}/senders/{sender['id']}/oauth/start"
    r = alice.post(path, {"provider": "google"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "provider"
    bad = alice.put("/api/credentials/oauth/yahoo", {"client_id": "a", "client_secret": "b"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "provider"
    generic = alice.put("/api/credentials/oauth/generic", {"client_id": "a", "client_secret": "b"})
    assert generic.status_code == 422
    assert {e["field"] for e in generic.json()["errors"]} == {"authorize_url", "token_url", "scope"}
    google = alice.put("/api/credentials/oauth/google", {"client_id": "a", "client_secret": "secret-b"}).json()
    assert google["token_url"] == "https://oauth2.googleapis.com/token"
    assert "secret-b" not in str(google)


def test_refused_refresh_marks_the_sender_for_reconnection(
    alice: Actor, provider: OidcProviderServer, engine: sa.Engine, box: SecretBox
) -> None:
    brand_id, sender_id = _oauth_sender(alice, provider)
    provider.expires_in = 60  # under the five-minute margin: every use refreshes
    assert alice.client.get("/hooks/oauth/callback", params=_authorize(_start(alice, brand_id, sender_id))).is_success
    fresh = access_token(engine, box, uuid.UUID(sender_id))
    assert provider.refreshes == 1
    assert fresh == provider.access_tokens[-1]

    provider.revoke_refresh_tokens()
    with pytest.raises(NeedsReconnect, match="refused the refresh token"):
        access_token(engine, box, uuid.UUID(sender_id))
    with pytest.raises(NeedsReconnect):
        access_token(engine, box, uuid.UUID(sender_id))
    assert provider.token_refusals == ["refresh_token"]  # asked once, not again
    shown = alice.get(f"/api/brands/{brand_id}/senders/{sender_id}").json()["oauth"]
    assert shown["status"] == "reconnect"
    assert "invalid_grant" in shown["reason"]


def test_verification_of_an_oauth_sender_logs_in_with_xoauth2(alice: Actor, engine: sa.Engine) -> None:
    with (
        oidc_provider(user=OidcUser(subject="sub-jane", email="jane@acme.example")) as provider,
        SmtpServer(xoauth2=provider.bearer_check, auth_required=True) as smtp,
    ):
        assert _set_client(alice, provider).status_code == 200
        brand = alice.create_brand()
        sender = alice.create_sender(
            brand["id"],
            kind="email",
            from_address="jane@acme.example",
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            smtp_security="none",
        )
        path = f"/api/brands/{brand['id']}/senders/{sender['id']}"
        assert alice.client.get("/hooks/oauth/callback", params=_authorize(_start(alice, brand["id"], sender["id"])))
        verified = alice.post(f"{path}/verify")
        assert verified.status_code == 200, verified.text
        assert verified.json()["verified"] is True
        assert verified.json()["oauth"]["status"] == "connected"
        assert [(a.mechanism, a.login, a.success) for a in smtp.auth_attempts] == [
            ("XOAUTH2", "jane@acme.example", True)
        ]
        assert smtp.bearer_tokens[0] not in verified.text

        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE sender_oauth SET expires_at = :t"), {"t": utcnow()})
        provider.revoke_refresh_tokens()
        refused = alice.post(f"{path}/verify")
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "auth_mode"
        assert "reconnect" in alice.get(path).json()["oauth"]["status"]
        assert len(smtp.auth_attempts) == 1


def test_no_secret_of_the_flow_reaches_a_log_line(
    alice: Actor,
    provider: OidcProviderServer,
    engine: sa.Engine,
    box: SecretBox,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    brand_id, sender_id = _oauth_sender(alice, provider)
    provider.expires_in = 60
    back = _authorize(_start(alice, brand_id, sender_id))
    assert alice.client.get("/hooks/oauth/callback", params=back).status_code == 200
    access_token(engine, box, uuid.UUID(sender_id))  # a refresh
    assert provider.refreshes == 1
    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert "oauth_connected" in logs
    secrets = [provider.client_secret, back["code"], back["state"], *provider.access_tokens]
    secrets += [call["form"].get("code_verifier") or call["form"]["refresh_token"] for call in provider.token_calls]
    assert len(secrets) == 7
    for secret in secrets:
        assert secret not in logs


def test_two_processes_near_expiry_refresh_once_and_get_the_same_token(
    alice: Actor, provider: OidcProviderServer, engine: sa.Engine, box: SecretBox
) -> None:
    brand_id, sender_id = _oauth_sender(alice, provider)
    assert alice.client.get("/hooks/oauth/callback", params=_authorize(_start(alice, brand_id, sender_id))).is_success
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE sender_oauth SET expires_at = :t"), {"t": utcnow() + timedelta(seconds=30)})
    engines = [make_engine(str(engine.url.render_as_string(hide_password=False)), pool_size=1) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            tokens = list(pool.map(lambda e: access_token(e, box, uuid.UUID(sender_id)), engines))
    finally:
        for e in engines:
            e.dispose()
    assert provider.refreshes == 1  # the others waited on the row lock, then read the stored token
    assert set(tokens) == {provider.access_tokens[-1]}


def test_connecting_again_reads_a_paused_mailbox_again(
    alice: Actor, provider: OidcProviderServer, engine: sa.Engine
) -> None:
    brand_id, sender_id = _oauth_sender(alice, provider)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO mailboxes (id, org_id, sender_id, folder, state, paused_reason, created_at, updated_at)"
                " SELECT :id, org_id, id, 'INBOX', 'paused', 'The provider refused the refresh token', now(), now()"
                " FROM senders WHERE id = :s"
            ),
            {"id": uuid.uuid4(), "s": sender_id},
        )
    assert alice.client.get("/hooks/oauth/callback", params=_authorize(_start(alice, brand_id, sender_id))).is_success
    with engine.connect() as conn:
        state, reason = conn.execute(
            sa.text("SELECT state, paused_reason FROM mailboxes WHERE sender_id = :s"), {"s": sender_id}
        ).one()
    assert (state, reason) == ("active", None)


def test_disconnecting_forgets_the_tokens_and_goes_back_to_the_password(
    alice: Actor, provider: OidcProviderServer, engine: sa.Engine, box: SecretBox
) -> None:
    brand_id, sender_id = _oauth_sender(alice, provider)
    assert alice.client.get("/hooks/oauth/callback", params=_authorize(_start(alice, brand_id, sender_id))).is_success
    path = f"/api/brands/{brand_id}/senders/{sender_id}"
    assert alice.as_role(Role.VIEWER).delete(f"{path}/oauth").status_code == 403
    assert alice.delete(f"{path}/oauth").status_code == 204
    shown = alice.get(path).json()
    assert (shown["auth_mode"], shown["oauth"]) == ("password", None)
    assert _tokens(engine, sender_id) is None
    with pytest.raises(NeedsReconnect):
        access_token(engine, box, uuid.UUID(sender_id))


def test_a_connected_sender_reads_its_mailbox_with_no_password(alice: Actor, provider: OidcProviderServer) -> None:
    brand_id, sender_id = _oauth_sender(alice, provider)
    path = f"/api/brands/{brand_id}/senders/{sender_id}"
    mailbox = {"imap_host": "imap.acme.example", "imap_tls": "tls"}
    before = alice.get(path)
    refused = alice.patch(path, mailbox, headers={"If-Match": before.headers["etag"]})
    assert refused.status_code == 422
    assert {e["field"] for e in refused.json()["errors"]} == {"imap_username", "imap_password"}
    assert alice.client.get("/hooks/oauth/callback", params=_authorize(_start(alice, brand_id, sender_id))).is_success
    connected = alice.get(path)
    r = alice.patch(path, mailbox, headers={"If-Match": connected.headers["etag"]})
    assert r.status_code == 200, r.text
    assert (r.json()["imap_host"], r.json()["imap_password"]["set"]) == ("imap.acme.example", False)


def test_tokens_sealed_under_another_key_ask_for_a_reconnection(
    alice: Actor, provider: OidcProviderServer, engine: sa.Engine
) -> None:
    brand_id, sender_id = _oauth_sender(alice, provider)
    assert alice.client.get("/hooks/oauth/callback", params=_authorize(_start(alice, brand_id, sender_id))).is_success
    with pytest.raises(NeedsReconnect, match="cannot be decrypted"):
        access_token(engine, SecretBox(["not-the-service-key"]), uuid.UUID(sender_id))
