"""Browser sessions: the refresh token in an HttpOnly cookie, CSRF-checked refresh and sign-out.

The cookies are read from the raw ``Set-Cookie`` headers and sent back by hand (``Cookie``), as the
browser would on the path each is scoped to: the test client's own jar would not send ``Secure``
cookies over plain HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import TestClient

from libs.settings import Environment
from services.auth.settings import AuthSettings
from tests.services.auth.conftest import PASSWORD, bearer, running, signup, unique_email

WEB = {"X-Tidewater-Client": "web"}


@dataclass
class SetCookie:
    name: str
    value: str
    attributes: dict[str, str]
    flags: set[str]


def set_cookies(response: httpx.Response) -> list[SetCookie]:
    """Every ``Set-Cookie`` of the answer, its attributes by lower-case name."""
    found = []
    for header in response.headers.get_list("set-cookie"):
        name_value, *parts = [part.strip() for part in header.split(";")]
        name, _, value = name_value.partition("=")
        attributes: dict[str, str] = {}
        flags: set[str] = set()
        for part in parts:
            key, eq, val = part.partition("=")
            if eq:
                attributes[key.lower()] = val
            else:
                flags.add(key.lower())
        found.append(SetCookie(name, value.strip('"'), attributes, flags))
    return found


@dataclass
class Browser:
    """The session cookies a browser holds: the refresh token (per path) and the CSRF token."""

    refresh: str
    csrf: str

    @classmethod
    def from_answer(cls, response: httpx.Response) -> Browser:
        cookies = set_cookies(response)
        refresh = {c.attributes["path"]: c.value for c in cookies if c.name == "tidewater_refresh"}
        assert set(refresh) == {"/api/auth/refresh", "/api/auth/logout"}, cookies
        assert len(set(refresh.values())) == 1, refresh
        (csrf,) = [c.value for c in cookies if c.name == "tidewater_csrf"]
        return cls(refresh=next(iter(refresh.values())), csrf=csrf)

    def cookie(self) -> str:
        jar: SimpleCookie = SimpleCookie()
        jar["tidewater_refresh"] = self.refresh
        jar["tidewater_csrf"] = self.csrf
        return "; ".join(f"{m.key}={m.coded_value}" for m in jar.values())

    def call(
        self, client: TestClient[Litestar], path: str, *, csrf: str | None = "same", **headers: str
    ) -> httpx.Response:
        client.cookies.clear()
        sent: dict[str, Any] = {"Cookie": self.cookie(), **WEB, **headers}
        if csrf == "same":
            sent["X-CSRF-Token"] = self.csrf
        elif csrf is not None:
            sent["X-CSRF-Token"] = csrf
        return client.post(path, json={}, headers=sent)


def web_login(client: TestClient[Litestar], email: str) -> tuple[httpx.Response, Browser]:
    client.cookies.clear()
    r = client.post("/api/auth/login", json={"email": email, "password": PASSWORD}, headers=WEB)
    assert r.status_code == 200, r.text
    return r, Browser.from_answer(r)


def test_cookie_mode_sets_a_strict_http_only_refresh_cookie_and_keeps_it_out_of_the_json(
    client: TestClient[Litestar],
) -> None:
    owner = signup(client)
    r, browser = web_login(client, owner.email)
    body = r.json()
    assert body["access_token"]
    assert body["refresh_token"] is None
    assert browser.refresh not in r.text
    assert browser.refresh.startswith("twr_") or len(browser.refresh) > 20
    assert r.headers["cache-control"] == "no-store"
    for cookie in set_cookies(r):
        assert cookie.attributes["samesite"].lower() == "strict", cookie
        assert "secure" in cookie.flags, cookie  # the test environment is not development
        assert int(cookie.attributes["max-age"]) == body["refresh_expires_in"], cookie
        if cookie.name == "tidewater_refresh":
            assert "httponly" in cookie.flags, cookie
        else:
            assert cookie.name == "tidewater_csrf"
            assert "httponly" not in cookie.flags  # the page reads it to repeat it in X-CSRF-Token
            assert cookie.attributes["path"] == "/"
            assert len(cookie.value) >= 32

    # An API client (no header) keeps the refresh token in the JSON, and gets no cookie.
    client.cookies.clear()
    api = client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert api.status_code == 200, api.text
    assert api.json()["refresh_token"]
    assert set_cookies(api) == []


def test_sign_up_in_cookie_mode_and_development_cookies_are_not_secure(auth_settings: AuthSettings) -> None:
    with running(auth_settings, env=Environment.DEVELOPMENT) as client:
        email = unique_email("dev")
        r = client.post(
            "/api/auth/signup",
            json={"email": email, "password": PASSWORD, "organization_name": "Acme"},
            headers=WEB,
        )
        assert r.status_code == 201, r.text
        assert r.json()["refresh_token"] is None
        browser = Browser.from_answer(r)
        assert browser.refresh not in r.text
        assert all("secure" not in c.flags for c in set_cookies(r)), r.headers.get_list("set-cookie")


def test_refresh_by_cookie_needs_the_csrf_header_and_rotates_the_cookie(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    _, browser = web_login(client, owner.email)

    for csrf in (None, "", "not-the-cookie"):
        refused = browser.call(client, "/api/auth/refresh", csrf=csrf)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "CsrfRefused"
        assert browser.refresh not in refused.text

    r = browser.call(client, "/api/auth/refresh")
    assert r.status_code == 200, r.text
    assert r.json()["refresh_token"] is None
    rotated = Browser.from_answer(r)
    assert rotated.refresh != browser.refresh
    assert rotated.csrf != browser.csrf
    assert rotated.refresh not in r.text
    me = client.get("/api/auth/me", headers=bearer(r.json()["access_token"]))
    assert me.status_code == 200, me.text

    # The refused attempts spent nothing: the rotated cookie works once more.
    again = rotated.call(client, "/api/auth/refresh")
    assert again.status_code == 200, again.text


def test_reusing_a_spent_refresh_cookie_revokes_the_whole_session(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    _, browser = web_login(client, owner.email)
    r = browser.call(client, "/api/auth/refresh")
    assert r.status_code == 200, r.text
    rotated = Browser.from_answer(r)
    access = r.json()["access_token"]

    stolen = Browser(refresh=browser.refresh, csrf=rotated.csrf)  # the spent token, sent again
    reused = stolen.call(client, "/api/auth/refresh")
    assert reused.status_code == 401, reused.text
    assert reused.headers["www-authenticate"] == "Bearer"
    (forgotten,) = set_cookies(reused)  # the page stops asking with a dead cookie
    assert (forgotten.name, forgotten.value, forgotten.attributes["max-age"]) == ("tidewater_csrf", "", "0")
    assert rotated.call(client, "/api/auth/refresh").status_code == 401  # the family is revoked
    assert client.get("/api/auth/me", headers=bearer(access)).status_code == 401


def test_sign_out_by_cookie_needs_csrf_then_revokes_the_session_and_clears_the_cookies(
    client: TestClient[Litestar],
) -> None:
    owner = signup(client)
    r, browser = web_login(client, owner.email)
    access = r.json()["access_token"]

    refused = browser.call(client, "/api/auth/logout", csrf=None)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "CsrfRefused"
    assert client.get("/api/auth/me", headers=bearer(access)).status_code == 200  # still signed in

    out = browser.call(client, "/api/auth/logout")
    assert out.status_code == 204, out.text
    cleared = set_cookies(out)
    assert {(c.name, c.attributes["path"]) for c in cleared} == {
        ("tidewater_refresh", "/api/auth/refresh"),
        ("tidewater_refresh", "/api/auth/logout"),
        ("tidewater_csrf", "/"),
    }
    assert all(c.value == "" and c.attributes["max-age"] == "0" for c in cleared), cleared
    assert client.get("/api/auth/me", headers=bearer(access)).status_code == 401
    assert browser.call(client, "/api/auth/refresh").status_code == 401


def test_without_a_token_or_cookie_refresh_names_the_missing_field(client: TestClient[Litestar]) -> None:
    client.cookies.clear()
    r = client.post("/api/auth/refresh", json={})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["refresh_token"]
    r = client.post("/api/auth/logout", json={}, headers=WEB)  # nothing to sign out: cookies cleared anyway
    assert r.status_code == 204, r.text


def test_switch_and_password_change_in_cookie_mode_set_a_new_cookie(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    r, browser = web_login(client, owner.email)
    headers = {**bearer(r.json()["access_token"]), **WEB}
    client.cookies.clear()
    changed = client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": "another long enough password"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["refresh_token"] is None
    fresh = Browser.from_answer(changed)
    assert fresh.refresh not in changed.text
    assert browser.call(client, "/api/auth/refresh").status_code == 401  # the old session ended
    assert fresh.call(client, "/api/auth/refresh").status_code == 200
