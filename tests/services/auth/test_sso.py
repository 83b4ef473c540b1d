"""Single sign-on with OpenID Connect against the loopback provider, over real HTTP both ways."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient
from pydantic import SecretStr

from services.auth.settings import AuthSettings
from tests.services.auth.conftest import bearer, running, signup, unique_email
from tests.services.auth.test_cookie_sessions import Browser
from tests.support.oidc_provider import OidcProviderServer, OidcUser, oidc_provider


@pytest.fixture
def provider() -> Iterator[OidcProviderServer]:
    with oidc_provider() as server:
        yield server


@pytest.fixture
def sso(auth_settings: AuthSettings, provider: OidcProviderServer) -> Iterator[TestClient[Litestar]]:
    with running(
        auth_settings,
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=SecretStr(provider.client_secret),
        oidc_name="Loopback",
    ) as c:
        yield c


def start(client: TestClient[Litestar], next_path: str = "/brands") -> str:
    """Begin a sign-in; return the provider's authorize URL."""
    r = client.get("/api/auth/sso/start", params={"next": next_path}, follow_redirects=False)
    assert r.status_code == 302, r.text
    return r.headers["location"]


def at_provider(authorize_url: str) -> str:
    """What the provider redirects the browser back to (path and query of the callback)."""
    r = httpx.get(authorize_url, follow_redirects=False)
    assert r.status_code == 302, r.text
    back = urlsplit(r.headers["location"])
    assert back.path == "/api/auth/sso/callback"
    return f"{back.path}?{back.query}"


def sign_in(client: TestClient[Litestar], next_path: str = "/brands") -> httpx.Response:
    """The whole round trip; the callback's answer."""
    return client.get(at_provider(start(client, next_path)), follow_redirects=False)


def refused_with(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/signin", location
    assert "tidewater_refresh" not in response.headers.get("set-cookie", "")
    return parse_qs(location.query)["sso_error"][0]


def session_of(client: TestClient[Litestar], response: httpx.Response) -> dict[str, object]:
    """Refresh with the cookies the callback set; the new session's /me."""
    browser = Browser.from_answer(response)
    r = browser.call(client, "/api/auth/refresh")
    assert r.status_code == 200, r.text
    me = client.get("/api/auth/me", headers=bearer(r.json()["access_token"]))
    assert me.status_code == 200, me.text
    body: dict[str, object] = me.json()
    return body


def test_sso_is_off_without_an_issuer(client: TestClient[Litestar]) -> None:
    assert client.get("/api/auth/sso").json() == {"enabled": False, "name": None}
    r = client.get("/api/auth/sso/start", follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "/signin?sso_error=sso_disabled"


def test_start_sends_state_nonce_and_pkce(sso: TestClient[Litestar], provider: OidcProviderServer) -> None:
    assert sso.get("/api/auth/sso").json() == {"enabled": True, "name": "Loopback"}
    url = urlsplit(start(sso))
    assert f"{url.scheme}://{url.netloc}" == provider.issuer
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == provider.client_id
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32
    assert len(query["nonce"]) >= 32
    assert query["redirect_uri"] == "http://127.0.0.1:8000/api/auth/sso/callback"
    assert "openid" in query["scope"].split()


def test_existing_user_signs_in_and_lands_on_next(sso: TestClient[Litestar], provider: OidcProviderServer) -> None:
    owner = signup(sso)
    provider.user = OidcUser(subject="owner-sub", email=owner.email.upper())
    r = sign_in(sso, "/campaigns?tab=live")
    assert r.status_code == 302, r.text
    assert r.headers["location"] == "/campaigns?tab=live"
    me = session_of(sso, r)
    assert me["user"]["id"] == str(owner.user_id)  # type: ignore[index]
    # The client authenticated with Basic (the first method the discovery document offers).
    assert provider.token_calls[-1]["headers"]["Authorization"].startswith("Basic ")
    assert "client_secret" not in provider.token_calls[-1]["form"]


def test_the_subject_link_survives_an_email_change(
    sso: TestClient[Litestar], provider: OidcProviderServer, database_url: str
) -> None:
    owner = signup(sso)
    provider.user = OidcUser(subject="stable-sub", email=owner.email)
    assert sign_in(sso).status_code == 302
    provider.user = OidcUser(subject="stable-sub", email=unique_email("renamed"))
    me = session_of(sso, sign_in(sso))
    assert me["user"]["id"] == str(owner.user_id)  # type: ignore[index]
    # A second subject claiming the owner's email is refused: the account is linked already.
    provider.user = OidcUser(subject="another-sub", email=owner.email)
    assert refused_with(sign_in(sso)) == "not_invited"
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT user_id, subject FROM oidc_identities")).all()
    engine.dispose()
    assert rows == [(owner.user_id, "stable-sub")]


def test_an_invited_email_joins_the_inviting_organization(
    sso: TestClient[Litestar], provider: OidcProviderServer
) -> None:
    owner = signup(sso, org="Inviters")
    email = unique_email("invitee")
    r = sso.post("/api/auth/invites", json={"email": email, "role": "member"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    provider.user = OidcUser(subject="invitee-sub", email=email, name="Ivy")
    me = session_of(sso, sign_in(sso))
    assert me["organization"]["id"] == str(owner.org_id)  # type: ignore[index]
    assert me["role"] == "member"
    invites = sso.get("/api/auth/invites", headers=owner.headers).json()["items"]
    assert invites[0]["status"] == "accepted"
    # The new account has no password: a password sign-in is refused.
    r = sso.post("/api/auth/login", json={"email": email, "password": "correct horse battery staple"})
    assert r.status_code == 401


def test_a_stranger_is_refused(sso: TestClient[Litestar], provider: OidcProviderServer) -> None:
    provider.user = OidcUser(subject="stranger", email=unique_email("stranger"))
    assert refused_with(sign_in(sso)) == "not_invited"


def test_an_unverified_email_is_refused(sso: TestClient[Litestar], provider: OidcProviderServer) -> None:
    owner = signup(sso)
    provider.user = OidcUser(subject="unverified", email=owner.email, email_verified=False)
    assert refused_with(sign_in(sso)) == "email_unverified"


def test_a_state_is_single_use(sso: TestClient[Litestar], provider: OidcProviderServer) -> None:
    owner = signup(sso)
    provider.user = OidcUser(subject="replay", email=owner.email)
    callback = at_provider(start(sso))
    assert sso.get(callback, follow_redirects=False).headers["location"] == "/brands"
    assert refused_with(sso.get(callback, follow_redirects=False)) == "state_invalid"
    assert refused_with(sso.get("/api/auth/sso/callback?code=x&state=made-up", follow_redirects=False)) == (
        "state_invalid"
    )


def test_pkce_binds_the_code_to_this_sign_in(sso: TestClient[Litestar], provider: OidcProviderServer) -> None:
    owner = signup(sso)
    provider.user = OidcUser(subject="pkce", email=owner.email)
    first = parse_qs(urlsplit(at_provider(start(sso))).query)
    second = parse_qs(urlsplit(at_provider(start(sso))).query)
    # The code of the first sign-in presented with the state (and so the verifier) of the second.
    crossed = f"/api/auth/sso/callback?code={first['code'][0]}&state={second['state'][0]}"
    assert refused_with(sso.get(crossed, follow_redirects=False)) == "token_refused"
    assert provider.token_refusals[-1] == "pkce"


@pytest.mark.parametrize("tamper", ["nonce", "aud", "iss", "expired", "signature", "unknown_kid"])
def test_a_tampered_id_token_is_refused(sso: TestClient[Litestar], provider: OidcProviderServer, tamper: str) -> None:
    owner = signup(sso)
    provider.user = OidcUser(subject=f"t-{tamper}", email=owner.email)
    provider.tamper = tamper
    assert refused_with(sign_in(sso)) == "id_token_invalid"


def test_a_provider_that_is_down_is_a_clear_error(
    sso: TestClient[Litestar], provider: OidcProviderServer, auth_settings: AuthSettings
) -> None:
    provider.down = True
    assert refused_with(sso.get("/api/auth/sso/start", follow_redirects=False)) == "provider_unavailable"
    with running(auth_settings, oidc_issuer="http://127.0.0.1:9", oidc_client_id="x") as c:
        assert refused_with(c.get("/api/auth/sso/start", follow_redirects=False)) == "provider_unavailable"


def test_next_is_kept_on_this_site(sso: TestClient[Litestar], provider: OidcProviderServer) -> None:
    owner = signup(sso)
    provider.user = OidcUser(subject="next", email=owner.email)
    for hostile in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        assert sign_in(sso, hostile).headers["location"] == "/"


def test_the_client_secret_and_tokens_are_in_no_log_line(
    sso: TestClient[Litestar],
    provider: OidcProviderServer,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    owner = signup(sso)
    provider.user = OidcUser(subject="logs", email=owner.email)
    callback = at_provider(start(sso))
    code = parse_qs(urlsplit(callback).query)["code"][0]
    r = sso.get(callback, follow_redirects=False)
    assert r.status_code == 302
    provider.tamper = "nonce"
    refused_with(sign_in(sso))
    out, err = capfd.readouterr()
    text = out + err + caplog.text
    assert "sso_signed_in" in text or "sso_failed" in text
    for secret in (provider.client_secret, code):
        assert secret not in text
    assert "eyJ" not in text  # no JWT


def test_sign_in_failures_are_throttled(auth_settings: AuthSettings, provider: OidcProviderServer) -> None:
    with running(
        auth_settings,
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=SecretStr(provider.client_secret),
        login_address_soft=2,
        login_address_hard=2,
    ) as c:
        for i in range(2):
            provider.user = OidcUser(subject=f"s-{i}-{uuid.uuid4().hex[:6]}", email=unique_email("nobody"))
            assert refused_with(sign_in(c)) == "not_invited"
        assert refused_with(sign_in(c)) == "too_many_attempts"
