"""Fixtures for the auth service: the real app on a fresh database and Redis, and small factories."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from libs.settings import Environment
from services.auth.app import create_app
from services.auth.settings import AuthSettings

PASSWORD = "correct horse battery staple"


@pytest.fixture
def auth_settings(database_url: str, redis_url: str) -> AuthSettings:
    """Settings of the auth service for this test's database and Redis."""
    return AuthSettings(env=Environment.TEST, database_url=database_url, redis_url=redis_url, database_pool_size=4)


@contextmanager
def running(settings: AuthSettings, **changes: Any) -> Iterator[TestClient[Litestar]]:
    """Start the auth service with ``changes`` applied to ``settings``."""
    with TestClient(create_app(settings.model_copy(update=changes))) as c:
        yield c


@pytest.fixture
def app(auth_settings: AuthSettings) -> Litestar:
    """The auth service as it runs in production (its own verifier, its own keys)."""
    return create_app(auth_settings)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    """A client on the started app."""
    with TestClient(app) as c:
        yield c


@dataclass
class Account:
    """Someone signed up in the tests: their ids, password and current tokens."""

    email: str
    password: str
    user_id: uuid.UUID
    org_id: uuid.UUID
    access_token: str
    refresh_token: str
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` for the account's access token."""
        return bearer(self.access_token)


def bearer(token: str) -> dict[str, str]:
    """An ``Authorization: Bearer`` header."""
    return {"Authorization": f"Bearer {token}"}


def unique_email(name: str = "user") -> str:
    """An address no other test uses."""
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


def account_from(body: dict[str, Any], email: str, password: str) -> Account:
    """Build an :class:`Account` from a session answer."""
    return Account(
        email=email,
        password=password,
        user_id=uuid.UUID(body["user"]["id"]),
        org_id=uuid.UUID(body["organization"]["id"]),
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        body=body,
    )


def signup(
    client: TestClient[Litestar], *, email: str | None = None, org: str = "Acme", password: str = PASSWORD
) -> Account:
    """Sign up a new organization and its owner."""
    email = email or unique_email("owner")
    r = client.post(
        "/api/auth/signup", json={"email": email, "password": password, "organization_name": org, "name": "Owner"}
    )
    assert r.status_code == 201, r.text
    return account_from(r.json(), email, password)


def login(client: TestClient[Litestar], email: str, password: str = PASSWORD, **extra: Any) -> Account:
    """Sign in and return the account with fresh tokens."""
    r = client.post("/api/auth/login", json={"email": email, "password": password, **extra})
    assert r.status_code == 200, r.text
    return account_from(r.json(), email, password)


def invite_and_join(
    client: TestClient[Litestar], owner: Account, *, role: str = "member", email: str | None = None
) -> Account:
    """Invite someone into the owner's organization and accept as a new user."""
    email = email or unique_email(role)
    r = client.post("/api/auth/invites", json={"email": email, "role": role}, headers=owner.headers)
    assert r.status_code == 201, r.text
    r = client.post("/api/auth/invites/accept", json={"token": r.json()["token"], "password": PASSWORD})
    assert r.status_code == 200, r.text
    return account_from(r.json(), email, PASSWORD)


def create_operator_account(client: TestClient[Litestar], settings: AuthSettings, email: str | None = None) -> Account:
    """Create an operator the way ``sdr create-operator`` does, accept the invite, and sign in."""
    import io
    from contextlib import redirect_stdout

    from services.auth.cli import create_operator

    email = email or unique_email("operator")
    out = io.StringIO()
    with redirect_stdout(out):
        create_operator(email, settings)
    token = next(word for word in out.getvalue().split() if word.startswith("twi_"))
    r = client.post("/api/auth/invites/accept", json={"token": token, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return account_from(r.json(), email, PASSWORD)
