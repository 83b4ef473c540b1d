"""Failed-login throttling and hashing capacity (A10, A11)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient

from libs.errors import TooManyRequests
from services.auth.passwords import Passwords
from services.auth.settings import AuthSettings
from services.auth.throttle import client_address
from tests.services.auth.conftest import PASSWORD, running, signup, unique_email

STRICT = {
    "login_account_soft": 3,
    "login_account_hard": 3,
    "login_account_lockout": 60,
    "login_account_lockout_max": 240,
    "login_address_soft": 100,
    "login_address_hard": 100,
    "trusted_proxies": ["testclient"],  # the test client stands in for the gateway
}


def _fail(client: TestClient[Litestar], email: str, times: int, ip: str | None = None) -> list[int]:
    headers = {"X-Forwarded-For": ip} if ip else {}
    return [
        client.post(
            "/api/auth/login", json={"email": email, "password": "wrong password!"}, headers=headers
        ).status_code
        for _ in range(times)
    ]


def test_lockout_answers_429_with_retry_after_even_for_the_right_password(auth_settings: AuthSettings) -> None:
    with running(auth_settings, **STRICT) as client:
        owner = signup(client)
        assert _fail(client, owner.email, 3) == [401, 401, 401]
        r = client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD})
        assert r.status_code == 429
        assert r.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(r.headers["retry-after"]) <= 60


def test_lockout_looks_the_same_for_an_unknown_email(auth_settings: AuthSettings) -> None:
    with running(auth_settings, **STRICT) as client:
        owner = signup(client)
        ghost = unique_email("ghost")
        assert _fail(client, owner.email, 3) == _fail(client, ghost, 3) == [401, 401, 401]
        known = client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD})
        unknown = client.post("/api/auth/login", json={"email": ghost, "password": PASSWORD})
        assert known.status_code == unknown.status_code == 429
        assert known.headers["retry-after"] == unknown.headers["retry-after"]
        strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
        assert strip(known) == strip(unknown)


def test_account_lockout_holds_from_any_address_and_expires_then_escalates(
    auth_settings: AuthSettings,
) -> None:
    # The gateway on loopback is a trusted proxy: the address it forwards is the client's.
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller, running(auth_settings, **STRICT) as client:
        owner = signup(client)
        assert _fail(client, owner.email, 3, ip="203.0.113.1") == [401] * 3
        r = client.post(
            "/api/auth/login",
            json={"email": owner.email, "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.7"},
        )
        assert r.status_code == 429
        traveller.shift(timedelta(seconds=61))
        assert client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD}).status_code == 200
        # The next lockout of the day lasts twice as long, and never more than the maximum.
        assert _fail(client, owner.email, 3) == [401] * 3
        r = client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD})
        assert 60 < int(r.headers["retry-after"]) <= 120
        traveller.shift(timedelta(seconds=121))
        _fail(client, owner.email, 3)
        traveller.shift(timedelta(seconds=121))
        assert client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD}).status_code == 429
        traveller.shift(timedelta(seconds=121))
        _fail(client, owner.email, 3)
        r = client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD})
        assert int(r.headers["retry-after"]) <= 240  # capped at the policy maximum


def test_repeated_failures_slow_down_before_the_lockout(auth_settings: AuthSettings) -> None:
    with running(auth_settings, login_account_soft=2, login_account_hard=10) as client:
        owner = signup(client)
        assert _fail(client, owner.email, 3) == [401, 401, 429]
        r = client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) <= 2


def test_an_address_is_throttled_across_accounts(auth_settings: AuthSettings) -> None:
    with running(auth_settings, login_address_soft=4, login_address_hard=4, trusted_proxies=["testclient"]) as client:
        owner = signup(client)
        statuses = [
            client.post(
                "/api/auth/login",
                json={"email": unique_email("stuffed"), "password": "guess guess guess"},
                headers={"X-Forwarded-For": "192.0.2.50"},
            ).status_code
            for _ in range(5)
        ]
        assert statuses == [401, 401, 401, 401, 429]
        blocked = client.post(
            "/api/auth/login",
            json={"email": owner.email, "password": PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.50"},
        )
        assert blocked.status_code == 429
        elsewhere = client.post(
            "/api/auth/login",
            json={"email": owner.email, "password": PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.51"},
        )
        assert elsewhere.status_code == 200


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusted = ["127.0.0.1"]
    assert client_address("127.0.0.1", "203.0.113.9, 10.0.0.1", trusted) == "10.0.0.1"
    assert client_address("198.51.100.1", "203.0.113.9", trusted) == "198.51.100.1"
    assert client_address("127.0.0.1", "not an address", trusted) == "127.0.0.1"
    assert client_address(None, None, trusted) == "unknown"


async def test_hashing_is_capped_and_refuses_beyond_its_queue() -> None:
    passwords = Passwords(time_cost=2, memory_kib=19 * 1024, parallelism=1, concurrency=1, queue_limit=2)
    state = {"running": 0, "peak": 0}

    class CountingHasher(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
            try:
                return super().hash(password, salt=salt)
            finally:
                state["running"] -= 1

    passwords.hasher = CountingHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
    results = await asyncio.gather(*(passwords.hash(PASSWORD) for _ in range(6)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, TooManyRequests)]
    hashed = [r for r in results if isinstance(r, str)]
    assert state["peak"] == 1
    assert len(hashed) == 3
    assert len(refused) == 3
    assert all(r.headers["Retry-After"] == "1" for r in refused)


async def test_a_full_queue_is_a_429_not_an_unbounded_wait() -> None:
    passwords = Passwords(time_cost=2, memory_kib=19 * 1024, parallelism=1, concurrency=1, queue_limit=0)
    first = asyncio.ensure_future(passwords.hash(PASSWORD))
    await asyncio.sleep(0)
    with pytest.raises(TooManyRequests):
        await passwords.hash(PASSWORD)
    assert (await first).startswith("$argon2id$")
