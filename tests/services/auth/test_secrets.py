"""No secret leaves after its creation: not in responses, not in logs, not in the database."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from litestar.testing import TestClient

from libs.db.session import make_engine
from services.auth.app import create_app
from services.auth.settings import AuthSettings
from tests.services.auth.conftest import PASSWORD, bearer, create_operator_account, unique_email
from tests.services.auth.test_tokens import _service_key

AUTH_TABLES = ("users", "memberships", "invites", "refresh_tokens", "api_keys", "signing_keys")


def test_a_full_flow_leaks_no_secret(
    auth_settings: AuthSettings, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = auth_settings.model_copy(update={"log_level": "DEBUG", "trusted_proxies": ["testclient"]})
    secrets: set[str] = {PASSWORD}
    responses: list[tuple[httpx.Response, set[str]]] = []

    def record(r: httpx.Response, *born: str) -> httpx.Response:
        responses.append((r, set(born)))
        return r

    with TestClient(create_app(settings)) as client:
        email = unique_email("owner")
        r = client.post("/api/auth/signup", json={"email": email, "password": PASSWORD, "organization_name": "Acme"})
        owner = r.json()
        record(r, owner["refresh_token"], owner["access_token"])
        secrets |= {owner["refresh_token"], owner["access_token"]}
        record(client.post("/api/auth/login", json={"email": email, "password": "a wrong password guess"}))
        r = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        login = r.json()
        record(r, login["refresh_token"], login["access_token"])
        secrets |= {login["refresh_token"], login["access_token"]}
        r = client.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]})
        rotated = r.json()
        record(r, rotated["refresh_token"], rotated["access_token"])
        secrets |= {rotated["refresh_token"], rotated["access_token"]}
        record(client.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]}))  # reuse
        headers = bearer(owner["access_token"])
        r = client.post("/api/auth/invites", json={"email": unique_email("new"), "role": "admin"}, headers=headers)
        invite_token = r.json()["token"]
        record(r, invite_token)
        secrets.add(invite_token)
        second_password = "another long passphrase"
        secrets.add(second_password)
        r = client.post("/api/auth/invites/accept", json={"token": invite_token, "password": second_password})
        record(r, r.json()["refresh_token"], r.json()["access_token"])
        secrets |= {r.json()["refresh_token"], r.json()["access_token"]}
        record(client.post("/api/auth/invites/accept", json={"token": invite_token, "password": second_password}))
        r = client.post(
            "/api/auth/api-keys", json={"name": "ci", "scopes": ["leads:read"], "role": "member"}, headers=headers
        )
        api_key = r.json()["key"]
        record(r, api_key)
        secrets.add(api_key)
        r = client.post("/api/auth/api-keys/exchange", headers=bearer(api_key))
        record(r, r.json()["access_token"])
        secrets.add(r.json()["access_token"])
        record(client.get("/api/auth/api-keys", headers=headers))
        record(client.get("/api/auth/invites", headers=headers))
        record(client.get("/api/auth/members", headers=headers))
        record(client.get("/api/auth/me", headers=headers))
        record(client.get("/api/auth/jwks.json"))
        new_password = "a third long passphrase"
        secrets.add(new_password)
        r = client.post(
            "/api/auth/password", json={"current_password": PASSWORD, "new_password": new_password}, headers=headers
        )
        record(r, r.json()["refresh_token"], r.json()["access_token"])
        secrets |= {r.json()["refresh_token"], r.json()["access_token"]}
        record(client.post("/api/auth/logout", json={"refresh_token": rotated["refresh_token"]}))
        operator = create_operator_account(client, settings)
        secrets |= {operator.refresh_token, operator.access_token}
        record(client.post("/api/auth/signing-keys/rotate", headers=operator.headers))

    kid, private = _service_key(database_url, settings)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    private_forms = {
        "".join(pem.splitlines()[1:-1]),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b64encode(raw).decode(),
    }

    logs = capsys.readouterr().err
    assert "login_failed" in logs
    assert "refresh_token_reused" in logs  # the security event is logged, the token is not
    for secret in secrets | private_forms:
        assert secret not in logs
    for response, born in responses:
        for secret in secrets - born:
            assert secret not in response.text, (response.request.url.path, secret[:8])
        for form in private_forms:
            assert form not in response.text

    engine = make_engine(database_url)
    with engine.connect() as conn:
        dump = {
            table: "\n".join(conn.execute(sa.text(f"SELECT row_to_json(t)::text FROM {table} t")).scalars())
            for table in AUTH_TABLES
        }
        hashes = (
            conn.execute(sa.text("SELECT password_hash FROM users WHERE password_hash IS NOT NULL")).scalars().all()
        )
        sealed = conn.execute(sa.text("SELECT private_key_encrypted FROM signing_keys")).scalars().all()
    engine.dispose()
    everything = "\n".join(dump.values())
    for secret in secrets | private_forms:
        assert secret not in everything
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert len(sealed) == 2
    assert all(re.match(r"^v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+$", s) for s in sealed)
    assert kid in dump["signing_keys"]
