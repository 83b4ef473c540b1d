"""Access tokens end to end: the service's JWKS feeds libs.security.TokenVerifier (A1-A6, rotation)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from litestar import Litestar, get
from litestar.di import NamedDependency
from litestar.testing import TestClient

from libs.app import create_service_app
from libs.crypto import SecretBox
from libs.db.session import make_engine
from libs.errors import Unauthorized
from libs.security import REQUIRED_CLAIMS, KeySource, Principal, Role, TokenVerifier, requires
from libs.settings import CommonSettings, Environment
from services.auth.settings import AuthSettings
from tests.services.auth.bridge import TestClientTransport
from tests.services.auth.conftest import bearer, create_operator_account, signup
from tests.support.tokens import TokenSigner

JWKS = "/api/auth/jwks.json"


@get("/api/things", guards=[requires(Role.VIEWER)])
async def whoami(principal: NamedDependency[Principal]) -> dict[str, Any]:
    return {
        "user": str(principal.user_id),
        "org": str(principal.org_id),
        "role": principal.role.value,
        "operator": principal.operator,
        "scopes": sorted(principal.scopes),
    }


@pytest.fixture
def downstream(
    client: TestClient[Litestar], database_url: str, redis_url: str
) -> Iterator[tuple[TestClient[Litestar], TestClientTransport]]:
    """Another service, verifying tokens with the JWKS it fetches from the auth service."""
    transport = TestClientTransport(client)
    keys = KeySource(url=f"http://auth{JWKS}", client=httpx.AsyncClient(transport=transport), ttl=300, refresh_floor=0)
    app = create_service_app(
        name="downstream",
        title="downstream",
        settings=CommonSettings(env=Environment.TEST, database_url=database_url, redis_url=redis_url),
        route_handlers=[whoami],
        verifier=TokenVerifier(keys, issuer="tidewater", audience="tidewater-api"),
    )
    with TestClient(app) as c:
        yield c, transport


def _verifier(client: TestClient[Litestar]) -> TokenVerifier:
    return TokenVerifier(KeySource(jwks=client.get(JWKS).json()), issuer="tidewater", audience="tidewater-api")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _service_key(database_url: str, settings: AuthSettings) -> tuple[str, Ed25519PrivateKey]:
    """The service's active private key, opened the way the service opens it (to forge claims)."""
    engine = make_engine(database_url)
    with engine.connect() as conn:
        kid, sealed = conn.execute(
            sa.text("SELECT kid, private_key_encrypted FROM signing_keys WHERE retired_at IS NULL")
        ).one()
    engine.dispose()
    pem = SecretBox.from_settings(settings).decrypt(sealed, associated_data=f"signing_keys:{kid}".encode())
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return kid, key


def test_tokens_carry_the_contract_claims_and_verify_with_the_jwks(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    header = jwt.get_unverified_header(owner.access_token)
    claims = jwt.decode(owner.access_token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA"
    assert set(REQUIRED_CLAIMS) <= set(claims)
    assert claims["exp"] - claims["iat"] == 900
    assert claims["op"] is False
    jwks = client.get(JWKS)
    assert set(jwks.headers["cache-control"].split(", ")) == {"public", "max-age=60"}
    assert [k["kid"] for k in jwks.json()["keys"]] == [header["kid"]]
    assert all(set(k) == {"kty", "crv", "x", "kid", "alg", "use"} for k in jwks.json()["keys"])  # no "d"
    principal = asyncio.run(_verifier(client).verify(owner.access_token))
    assert (principal.user_id, principal.org_id, principal.role) == (owner.user_id, owner.org_id, Role.OWNER)


def test_another_service_accepts_the_tokens_through_the_jwks_it_fetches(
    client: TestClient[Litestar], downstream: tuple[TestClient[Litestar], TestClientTransport]
) -> None:
    service, transport = downstream
    owner = signup(client)
    r = service.get("/api/things", headers=owner.headers)
    assert r.status_code == 200, r.text
    assert r.json()["org"] == str(owner.org_id)
    assert transport.requests == [JWKS]


def _forgeries(client: TestClient[Litestar], token: str) -> dict[str, str]:
    header_b64, payload_b64, signature = token.split(".")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    jwk = client.get(JWKS).json()["keys"][0]
    public = OKPAlgorithm.from_jwk(jwk)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[union-attr]
    openssh = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)  # type: ignore[union-attr]
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)  # type: ignore[union-attr]
    attacker = Ed25519PrivateKey.generate()
    attacker_jwk = OKPAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    none_header = _b64({"alg": "none", "typ": "JWT", "kid": header["kid"]})
    forged: dict[str, str] = {
        "tampered org": f"{header_b64}.{_b64({**claims, 'org': str(uuid.uuid4())})}.{signature}",
        "tampered role": f"{header_b64}.{_b64({**claims, 'role': 'owner', 'op': True})}.{signature}",
        "alg none, no signature": f"{none_header}.{payload_b64}.",
        "alg none, kept signature": f"{none_header}.{payload_b64}.{signature}",
        "foreign kid": TokenSigner().mint(org_id=uuid.UUID(claims["org"]), user_id=uuid.UUID(claims["sub"])),
        "our kid, another key": jwt.encode(claims, attacker, algorithm="EdDSA", headers={"kid": header["kid"]}),
        "jwk header with the attacker key": jwt.encode(
            claims, attacker, algorithm="EdDSA", headers={"kid": header["kid"], "jwk": attacker_jwk}
        ),
        "jku header": jwt.encode(
            claims, attacker, algorithm="EdDSA", headers={"kid": header["kid"], "jku": "http://127.0.0.1:9/jwks"}
        ),
        "kid path traversal": jwt.encode(claims, attacker, algorithm="EdDSA", headers={"kid": "../../etc/passwd"}),
        "kid sql": jwt.encode(claims, attacker, algorithm="EdDSA", headers={"kid": "' OR 1=1--"}),
        "kid 10 KB": jwt.encode(claims, attacker, algorithm="EdDSA", headers={"kid": "k" * 10_240}),
        "garbage": "not.a.token",
    }
    # HS256 "signed" with our public key in every form a confused verifier might accept.
    for name, secret in {"pem": pem, "openssh": openssh, "raw": raw, "jwk json": json.dumps(jwk).encode()}.items():
        segments = [_b64({"alg": "HS256", "typ": "JWT", "kid": header["kid"]}), payload_b64]
        import hashlib
        import hmac

        mac = hmac.new(secret, ".".join(segments).encode(), hashlib.sha256).digest()
        forged[f"HS256 with the public key ({name})"] = ".".join(
            [*segments, base64.urlsafe_b64encode(mac).decode().rstrip("=")]
        )
    return forged


def test_forged_tokens_are_refused_by_the_auth_service_and_by_another_service(
    client: TestClient[Litestar], downstream: tuple[TestClient[Litestar], TestClientTransport]
) -> None:
    service, transport = downstream
    owner = signup(client)
    assert service.get("/api/things", headers=owner.headers).status_code == 200
    for name, token in _forgeries(client, owner.access_token).items():
        for target, path in ((client, "/api/auth/me"), (service, "/api/things")):
            r = target.get(path, headers=bearer(token))
            assert r.status_code == 401, (name, path, r.text)
            assert r.json()["code"] == "Unauthorized"
        with pytest.raises(Unauthorized):
            asyncio.run(_verifier(client).verify(token))
    # The attacker's jku was never fetched; only our JWKS was (once, plus refreshes for unknown kids).
    assert set(transport.requests) == {JWKS}


def test_claims_missing_or_wrong_are_refused_even_with_our_signature(
    client: TestClient[Litestar], database_url: str, auth_settings: AuthSettings
) -> None:
    owner = signup(client)
    kid, key = _service_key(database_url, auth_settings)
    claims = jwt.decode(owner.access_token, options={"verify_signature": False})
    assert client.get("/api/auth/me", headers=bearer(jwt.encode(claims, key, "EdDSA", {"kid": kid}))).status_code == 200
    now = int(time.time())
    variants: dict[str, dict[str, Any]] = {
        **{f"no {c}": {k: v for k, v in claims.items() if k != c} for c in REQUIRED_CLAIMS},
        "wrong aud": {**claims, "aud": "someone-else"},
        "aud list": {**claims, "aud": ["someone-else"]},
        "wrong iss": {**claims, "iss": "evil"},
        "not yet valid": {**claims, "nbf": now + 600},
        "expired": {**claims, "exp": now - 60},
        "role unknown": {**claims, "role": "superuser"},
    }
    for name, payload in variants.items():
        token = jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid})
        assert client.get("/api/auth/me", headers=bearer(token)).status_code == 401, name


def test_tokens_expire_after_fifteen_minutes(client: TestClient[Litestar]) -> None:
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        owner = signup(client)
        traveller.shift(timedelta(minutes=14))
        assert client.get("/api/auth/me", headers=owner.headers).status_code == 200
        traveller.shift(timedelta(minutes=1, seconds=31))  # past exp plus the verifier's 30 s leeway
        r = client.get("/api/auth/me", headers=owner.headers)
        assert r.status_code == 401
        assert "expired" in r.json()["detail"]


def test_rotation_signs_with_the_new_key_and_keeps_old_tokens_valid(
    client: TestClient[Litestar],
    auth_settings: AuthSettings,
    downstream: tuple[TestClient[Litestar], TestClientTransport],
) -> None:
    service, _ = downstream
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        owner = signup(client)
        old_kid = jwt.get_unverified_header(owner.access_token)["kid"]
        assert client.post("/api/auth/signing-keys/rotate", headers=owner.headers).status_code == 403
        operator = create_operator_account(client, auth_settings)
        assert jwt.decode(operator.access_token, options={"verify_signature": False})["op"] is True
        r = client.post("/api/auth/signing-keys/rotate", headers=operator.headers)
        assert r.status_code == 201, r.text
        new_kid = r.json()["kid"]
        assert new_kid != old_kid
        fresh = client.post("/api/auth/login", json={"email": owner.email, "password": owner.password}).json()
        assert jwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid
        assert {k["kid"] for k in client.get(JWKS).json()["keys"]} == {old_kid, new_kid}
        for token in (owner.access_token, fresh["access_token"]):
            assert client.get("/api/auth/me", headers=bearer(token)).status_code == 200
            assert service.get("/api/things", headers=bearer(token)).status_code == 200  # refetched for the new kid
        # Once every token the old key signed has expired, it leaves the JWKS.
        traveller.shift(timedelta(minutes=20))
        assert {k["kid"] for k in client.get(JWKS).json()["keys"]} == {new_kid}


def test_a_key_outside_the_jwks_is_never_trusted(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    verifier = TokenVerifier(KeySource(jwks={"keys": []}), issuer="tidewater", audience="tidewater-api")
    with pytest.raises(Unauthorized):
        asyncio.run(verifier.verify(owner.access_token))
