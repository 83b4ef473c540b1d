"""Edge budgets on real Redis: per organization, per API key, per client address, costly paths, two replicas."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, get, post
from litestar.datastructures import State
from litestar.testing import TestClient
from redis import Redis

from gateway.app import create_app
from gateway.proxy import GatewayProxy
from gateway.ratelimit import RateLimiter
from gateway.settings import GatewaySettings
from libs.errors import EXCEPTION_HANDLERS, Unauthorized
from libs.settings import Environment
from tests.gateway.apps import create_echo_app
from tests.support.smtp import unused_port
from tests.support.tokens import TokenSigner

ORG = uuid.UUID(int=70)
KEYS = {"twk_key-a": uuid.UUID(int=71), "twk_key-b": uuid.UUID(int=72)}
"""Two API keys of the organization ``ORG``, with their ids (the ``akid`` of their exchanged tokens)."""


def create_key_auth_app(signer: TokenSigner) -> Litestar:
    """An auth service that serves a JWKS and exchanges two API keys of one organization."""

    @get("/api/auth/jwks.json", sync_to_thread=False)
    def jwks() -> dict[str, Any]:
        return signer.jwks()

    @post("/api/auth/api-keys/exchange", status_code=200, sync_to_thread=False)
    def exchange(request: Request[Any, Any, Any]) -> dict[str, Any]:
        key = (request.headers.get("authorization") or "").removeprefix("Bearer ")
        if key not in KEYS:
            raise Unauthorized("Unknown API key.")
        token = signer.mint(org_id=ORG, ttl=900, akid=str(KEYS[key]), scopes=["campaigns:write"])
        return {"access_token": token, "token_type": "bearer", "expires_in": 900}

    @post("/api/auth/login", status_code=200, sync_to_thread=False)
    def login() -> dict[str, str]:
        return {"status": "tried"}

    return Litestar(route_handlers=[jwks, exchange, login], exception_handlers=EXCEPTION_HANDLERS, state=State({}))


@dataclass
class Edge:
    client: TestClient[Any]
    gateway: GatewayProxy
    brand: Litestar
    campaign: Litestar


def _settings(redis_url: str, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "env": Environment.TEST,
        "redis_url": redis_url,
        "rate_limit_enabled": True,
        "rate_limit_org_read": 5,
        "rate_limit_org_write": 5,
        "rate_limit_org_costly": 2,
        "rate_limit_key_read": 3,
        "rate_limit_key_write": 3,
        "rate_limit_key_costly": 1,
        "rate_limit_address_read": 2,
        "rate_limit_address_write": 2,
        "proxy_read_timeout": 2.0,
        **overrides,
    }
    return GatewaySettings(**values)


@contextmanager
def edge(signer: TokenSigner, settings: GatewaySettings) -> Iterator[Edge]:
    """A gateway in front of real in-process upstreams, served through a test client."""
    brand, campaign = create_echo_app("brand"), create_echo_app("campaign")
    gateway = create_app(
        settings, upstream_apps={"auth": create_key_auth_app(signer), "brand": brand, "campaign": campaign}
    )
    with TestClient(gateway, base_url="http://edge.example") as client:  # type: ignore[type-var]
        yield Edge(client, gateway, brand, campaign)


@pytest.fixture
def one(signer: TokenSigner, redis_url: str) -> Iterator[Edge]:
    with edge(signer, _settings(redis_url)) as e:
        yield e


def bearer(signer: TokenSigner, org_id: uuid.UUID = ORG) -> dict[str, str]:
    return {"Authorization": f"Bearer {signer.mint(org_id=org_id)}"}


def limits(response: httpx.Response) -> tuple[int, int]:
    return int(response.headers["RateLimit-Limit"]), int(response.headers["RateLimit-Remaining"])


# --------------------------------------------------------------------------- budgets per organization


def test_an_exhausted_budget_is_a_429_problem_with_retry_after_and_ratelimit_headers(
    one: Edge, signer: TokenSigner
) -> None:
    auth = bearer(signer)
    answers = [one.client.get("/api/brands", headers=auth) for _ in range(5)]
    assert [r.status_code for r in answers] == [200] * 5
    assert [limits(r) for r in answers] == [(5, 4), (5, 3), (5, 2), (5, 1), (5, 0)]
    assert answers[0].headers["RateLimit-Policy"] == '"org-read";q=5;w=60'
    assert answers[0].headers["RateLimit"].startswith('"org-read";r=4;t=')
    assert 0 < int(answers[-1].headers["RateLimit-Reset"]) <= 60
    refused = one.client.get("/api/brands/1", headers=auth)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["code"] == "TooManyRequests"
    assert problem["policy"] == "org-read"
    assert problem["instance"] == "/api/brands/1"
    assert problem["request_id"] == refused.headers["x-request-id"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 12  # one request's share of the window: 60 s / 5
    assert problem["retry_after_seconds"] == int(refused.headers["Retry-After"])
    assert limits(refused) == (5, 0)
    assert one.brand.state.hits == 5  # the refused request never reached the service


def test_reads_and_writes_have_separate_budgets(one: Edge, signer: TokenSigner) -> None:
    auth = bearer(signer)
    for _ in range(5):
        assert one.client.get("/api/campaigns", headers=auth).status_code == 200
    assert one.client.get("/api/campaigns", headers=auth).status_code == 429
    written = one.client.post("/api/campaigns", headers=auth, json={"name": "x"})
    assert written.status_code == 200
    assert written.headers["RateLimit-Policy"] == '"org-write";q=5;w=60'
    assert limits(written) == (5, 4)
    assert one.client.head("/api/campaigns", headers=auth).status_code == 429  # HEAD is a read


def test_one_organization_exhausted_leaves_another_untouched(one: Edge, signer: TokenSigner) -> None:
    org_a, org_b = uuid.uuid4(), uuid.uuid4()
    a = bearer(signer, org_a)
    for _ in range(5):
        one.client.get("/api/leads", headers=a)
    assert one.client.get("/api/leads", headers=a).status_code == 429
    other = one.client.get("/api/leads", headers=bearer(signer, org_b))
    assert other.status_code == 200
    assert limits(other) == (5, 4)
    # Another user of organization A (another token) shares A's budget.
    assert one.client.get("/api/leads", headers=bearer(signer, org_a)).status_code == 429


def test_the_identity_comes_from_the_verified_token_only(one: Edge, signer: TokenSigner) -> None:
    org = uuid.uuid4()
    for _ in range(5):
        one.client.get("/api/leads", headers=bearer(signer, org))
    # Client-sent identity headers are dropped at the edge: they neither move nor escape a budget.
    spoof = {**bearer(signer, org), "X-Org-Id": str(uuid.uuid4())}
    assert one.client.get("/api/leads", headers=spoof).status_code == 429
    forged = TokenSigner().mint(org_id=uuid.uuid4())  # signed by a key the edge does not trust
    r = one.client.get("/api/leads", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    assert "RateLimit-Limit" not in r.headers


# --------------------------------------------------------------------------- budgets per API key


def test_each_api_key_has_its_own_budget_inside_its_organizations(one: Edge, signer: TokenSigner) -> None:
    key_a = {"Authorization": "Bearer twk_key-a"}
    key_b = {"Authorization": "Bearer twk_key-b"}
    first = one.client.get("/api/messages", headers=key_a)
    assert first.status_code == 200
    assert first.headers["RateLimit-Policy"] == '"org-read";q=5;w=60, "key-read";q=3;w=60'
    assert limits(first) == (3, 2)  # the key's budget is the tighter one
    assert [one.client.get("/api/messages", headers=key_a).status_code for _ in range(3)] == [200, 200, 429]
    refused = one.client.get("/api/messages", headers=key_a)
    assert refused.json()["policy"] == "key-read"
    other_key = one.client.get("/api/messages", headers=key_b)
    assert other_key.status_code == 200  # the organization still had 2 of its 5
    assert other_key.headers["RateLimit"].startswith('"org-read";r=1;')
    assert one.client.get("/api/messages", headers=bearer(signer)).status_code == 200  # a user of the org: the last
    org_spent = one.client.get("/api/messages", headers=key_b)
    assert org_spent.status_code == 429
    assert org_spent.json()["policy"] == "org-read"


# --------------------------------------------------------------------------- paths that cost money or mail


@pytest.mark.parametrize(
    "path",
    [
        f"/api/campaigns/{uuid.uuid4()}/launch",
        "/api/leads/imports",
        f"/api/brands/{uuid.uuid4()}/senders/{uuid.uuid4()}/verify",
        f"/api/campaigns/{uuid.uuid4()}/steps/{uuid.uuid4()}/test-send",
    ],
)
def test_costly_paths_have_a_stricter_budget_than_other_writes(one: Edge, signer: TokenSigner, path: str) -> None:
    auth = bearer(signer, uuid.uuid4())
    first = one.client.post(path, headers=auth)
    assert first.status_code == 200
    assert first.headers["RateLimit-Policy"] == '"org-write";q=5;w=60, "org-costly";q=2;w=60'
    assert limits(first) == (2, 1)
    assert one.client.post(path, headers=auth).status_code == 200
    refused = one.client.post(path, headers=auth)
    assert refused.status_code == 429
    assert refused.json()["policy"] == "org-costly"
    assert one.client.post("/api/campaigns", headers=auth).status_code == 200  # other writes go on
    assert one.client.get(path, headers=auth).status_code == 200  # reading the same path is no cost


def test_a_key_gets_a_smaller_share_of_its_organizations_costly_budget(one: Edge, signer: TokenSigner) -> None:
    launch = f"/api/campaigns/{uuid.uuid4()}/launch"
    assert one.client.post(launch, headers={"Authorization": "Bearer twk_key-a"}).status_code == 200
    refused = one.client.post(launch, headers={"Authorization": "Bearer twk_key-a"})
    assert refused.status_code == 429
    assert refused.json()["policy"] == "key-costly"
    assert one.client.post(launch, headers={"Authorization": "Bearer twk_key-b"}).status_code == 200
    assert one.client.post(launch, headers={"Authorization": "Bearer twk_key-b"}).json()["policy"] == "key-costly"
    assert one.client.post(launch, headers=bearer(signer)).json()["policy"] == "org-costly"  # 2 of 2 taken


def test_the_costly_rules_match_whole_paths_and_methods(redis_url: str) -> None:
    limiter = RateLimiter.from_settings(_settings(redis_url))
    assert limiter is not None
    assert limiter.is_costly("POST", "/api/campaigns/c1/launch")
    assert limiter.is_costly("POST", "/api/leads/imports")
    assert not limiter.is_costly("GET", "/api/leads/imports")
    assert not limiter.is_costly("POST", "/api/leads/imports/i1/report")
    assert not limiter.is_costly("POST", "/api/campaigns/c1/launch/x")
    assert not limiter.is_costly("POST", "/api/campaigns/c1/pause")
    with pytest.raises(ValueError, match="METHOD path-regex"):
        RateLimiter("redis://127.0.0.1:1/0", limiter.policy, costly_paths=["/api/no-method"])


# --------------------------------------------------------------------------- calls without a token


def test_calls_without_a_token_are_budgeted_per_client_address(one: Edge) -> None:
    assert [one.client.get("/api/auth/jwks.json").status_code for _ in range(3)] == [200, 200, 429]
    assert one.client.get("/api/auth/jwks.json").json()["policy"] == "address-read"
    # Login throttles itself per account and address; it is left out of the address budget.
    for _ in range(5):
        login = one.client.post("/api/auth/login", json={})
        assert login.status_code == 200
        assert "RateLimit-Limit" not in login.headers
    # Public paths outside /api/ (links in mail, provider callbacks) are not budgeted here.
    for _ in range(5):
        assert one.client.get("/u/some-token").status_code == 200


# --------------------------------------------------------------------------- replicas and Redis


def test_two_gateways_on_one_redis_share_each_counter(signer: TokenSigner, redis_url: str, redis: Redis) -> None:
    settings = _settings(redis_url)
    auth = bearer(signer, uuid.uuid4())
    with ExitStack() as stack:
        first = stack.enter_context(edge(signer, settings))
        second = stack.enter_context(edge(signer, settings))
        statuses = [(first if i % 2 else second).client.get("/api/brands", headers=auth).status_code for i in range(5)]
        assert statuses == [200] * 5
        assert first.client.get("/api/brands", headers=auth).status_code == 429
        assert second.client.get("/api/brands", headers=auth).status_code == 429
        assert first.brand.state.hits + second.brand.state.hits == 5
    assert redis.keys("tw:rl:gw:*")  # the counters live in the shared Redis


def test_redis_down_fails_open_by_default(signer: TokenSigner, redis_url: str) -> None:
    settings = _settings(redis_url, rate_limit_redis_url=f"redis://127.0.0.1:{unused_port()}/0")
    with edge(signer, settings) as down:
        auth = bearer(signer)
        answers = [down.client.get("/api/brands", headers=auth) for _ in range(8)]
        assert [r.status_code for r in answers] == [200] * 8  # over the budget of 5, but nothing can count
        assert all("RateLimit-Limit" not in r.headers for r in answers)
        limiter = down.gateway.rate_limiter
        assert limiter is not None
        assert limiter.failures == 1  # after a failure Redis is left alone for a second


def test_redis_down_fails_closed_when_asked(signer: TokenSigner, redis_url: str) -> None:
    settings = _settings(
        redis_url, rate_limit_redis_url=f"redis://127.0.0.1:{unused_port()}/0", rate_limit_fail_open=False
    )
    with edge(signer, settings) as down:
        r = down.client.get("/api/brands", headers=bearer(signer))
        assert r.status_code == 503
        assert r.json()["code"] == "Unavailable"
        assert r.headers["Retry-After"] == "1"
        assert down.brand.state.hits == 0
        assert down.client.get("/api/auth/login").status_code != 503  # what is not budgeted is not refused


def test_the_limiter_is_off_when_disabled_and_by_default_under_test(signer: TokenSigner, redis_url: str) -> None:
    assert GatewaySettings(env=Environment.DEVELOPMENT).rate_limit_on
    assert GatewaySettings(env=Environment.PRODUCTION, secret_key="x" * 40).rate_limit_on
    assert not GatewaySettings(env=Environment.TEST).rate_limit_on
    assert not GatewaySettings(env=Environment.DEVELOPMENT, rate_limit_enabled=False).rate_limit_on
    with edge(signer, _settings(redis_url, rate_limit_enabled=False)) as off:
        answers = [off.client.get("/api/brands", headers=bearer(signer)) for _ in range(8)]
        assert [r.status_code for r in answers] == [200] * 8
        assert "RateLimit-Limit" not in answers[-1].headers
        assert off.gateway.rate_limiter is None
