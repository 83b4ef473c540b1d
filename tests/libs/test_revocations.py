"""Revocation records: what each one voids, one look-up per token, and a refusal (503) when Redis is away."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import jwt
import pytest
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.testing import TestClient
from redis import Redis

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from libs.app import create_service_app
from libs.errors import EXCEPTION_HANDLERS, Unauthorized, Unavailable
from libs.security import (
    ISSUED_MS_CLAIM,
    JWTAuthMiddleware,
    RevocationList,
    TokenVerifier,
    api_key_record,
    membership_record,
    now_ms,
    session_record,
    user_record,
)
from libs.settings import CommonSettings, Environment
from tests.support.tokens import TokenSigner

ORG = uuid.UUID(int=7)
USER = uuid.UUID(int=8)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def revocations(redis_url: str) -> RevocationList:
    return RevocationList(redis_url)


def _verify(signer: TokenSigner, revocations: RevocationList, token: str) -> Any:
    verifier = TokenVerifier(
        signer.verifier().keys, issuer="tidewater", audience="tidewater-api", revocations=revocations
    )

    async def run() -> Any:
        try:
            return await verifier.verify(token)
        finally:
            await revocations.aclose()

    return asyncio.run(run())


def _revoke(revocations: RevocationList, *records: str, at_ms: int | None = None) -> int:
    async def run() -> int:
        try:
            return await revocations.revoke(records, ttl=60, at_ms=at_ms)
        finally:
            await revocations.aclose()

    return asyncio.run(run())


def _token(signer: TokenSigner, issued_ms: int, **claims: Any) -> str:
    extra: dict[str, Any] = {ISSUED_MS_CLAIM: issued_ms, **claims}
    return signer.mint(org_id=ORG, user_id=USER, iat=issued_ms // 1000, **extra)


@pytest.mark.parametrize(
    ("record", "claims", "voided"),
    [
        (session_record("fam-1"), {"sid": "fam-1"}, True),
        (session_record("fam-2"), {"sid": "fam-1"}, False),
        (user_record(USER), {"sid": "fam-1"}, True),
        (user_record(USER), {"akid": str(uuid.UUID(int=9))}, False),  # a password change leaves API keys alone
        (membership_record(ORG, USER), {"sid": "fam-1"}, True),
        (membership_record(ORG, USER), {"akid": str(uuid.UUID(int=9))}, True),
        (membership_record(uuid.UUID(int=70), USER), {"sid": "fam-1"}, False),  # another organization
        (api_key_record(uuid.UUID(int=9)), {"akid": str(uuid.UUID(int=9))}, True),
        (api_key_record(uuid.UUID(int=10)), {"akid": str(uuid.UUID(int=9))}, False),
    ],
)
def test_each_record_voids_exactly_the_tokens_it_names(
    signer: TokenSigner, revocations: RevocationList, record: str, claims: dict[str, Any], voided: bool
) -> None:
    issued = now_ms()
    token = _token(signer, issued, **claims)
    assert _verify(signer, revocations, token).user_id == USER
    _revoke(revocations, record, at_ms=issued + 1)
    if voided:
        with pytest.raises(Unauthorized, match="revoked"):
            _verify(signer, revocations, token)
    else:
        assert _verify(signer, revocations, token).user_id == USER


def test_tokens_issued_after_the_revocation_live(signer: TokenSigner, revocations: RevocationList) -> None:
    epoch = _revoke(revocations, user_record(USER), membership_record(ORG, USER), session_record("s"))
    assert _verify(signer, revocations, _token(signer, epoch, sid="s")).user_id == USER
    with pytest.raises(Unauthorized):
        _verify(signer, revocations, _token(signer, epoch - 1, sid="s"))


def test_a_record_only_moves_forward_and_expires(revocations: RevocationList, redis: Redis) -> None:
    record = session_record("s")
    _revoke(revocations, record, at_ms=2_000)
    _revoke(revocations, record, at_ms=1_000)
    assert redis.get(record) == b"2000"
    assert 0 < redis.ttl(record) <= 60


def test_a_token_without_the_ms_claim_counts_from_the_start_of_its_second(
    signer: TokenSigner, revocations: RevocationList
) -> None:
    issued = now_ms()
    token = signer.mint(org_id=ORG, user_id=USER, iat=issued // 1000, sid="s")
    _revoke(revocations, session_record("s"), at_ms=(issued // 1000) * 1000 + 1)
    with pytest.raises(Unauthorized):
        _verify(signer, revocations, token)


def test_an_unreachable_redis_refuses_with_503(signer: TokenSigner) -> None:
    down = RevocationList(f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.5)
    with pytest.raises(Unavailable):
        _verify(signer, down, _token(signer, now_ms(), sid="s"))
    with pytest.raises(Unavailable):
        _revoke(down, session_record("s"))


def test_a_forged_token_is_refused_before_any_lookup(signer: TokenSigner) -> None:
    """Signature first: a token we did not sign never reaches Redis (here: a Redis that is down)."""
    down = RevocationList(f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.5)
    forged = jwt.encode({"sub": str(USER)}, "not-our-key-" + "x" * 32, algorithm="HS256")
    with pytest.raises(Unauthorized):
        _verify(signer, down, forged)


@get("/thing", sync_to_thread=False)
def thing() -> dict[str, str]:
    return {"ok": "yes"}


def _service(signer: TokenSigner, revocations: RevocationList) -> Litestar:
    verifier = TokenVerifier(
        signer.verifier().keys, issuer="tidewater", audience="tidewater-api", revocations=revocations
    )
    return Litestar(
        route_handlers=[thing],
        middleware=[DefineMiddleware(JWTAuthMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        state=State({"verifier": verifier}),
    )


def test_the_middleware_answers_401_for_a_revoked_token_and_503_when_redis_is_away(
    signer: TokenSigner, redis_url: str
) -> None:
    token = _token(signer, now_ms(), sid="s")
    with TestClient(_service(signer, RevocationList(redis_url))) as client:
        assert client.get("/thing", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        _revoke(RevocationList(redis_url), session_record("s"))
        r = client.get("/thing", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert r.json()["detail"] == "The access token has been revoked."
    down = RevocationList(f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.5)
    with TestClient(_service(signer, down)) as client:
        r = client.get("/thing", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "Unavailable"


def test_every_service_and_the_gateway_check_revocations_as_wired_by_default(settings: CommonSettings) -> None:
    app = create_service_app(name="probe", title="probe", settings=settings, route_handlers=[thing])
    with TestClient(app):
        assert isinstance(app.state.verifier.revocations, RevocationList)
        assert app.state.verifier.revocations.url == settings.redis_url
    gateway = create_gateway(
        GatewaySettings(env=Environment.TEST, database_url=settings.database_url, redis_url=settings.redis_url)
    )
    assert isinstance(gateway.verifier.revocations, RevocationList)
