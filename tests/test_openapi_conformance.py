"""The merged OpenAPI document tells the truth: every answer of the real system matches it.

The gateway runs under uvicorn on a loopback port with the three real services in-process, on a
fresh database, and a real sign-up gives the token. Schemathesis then sends a fixed number of
valid and invalid requests to every operation of ``/api/openapi.json`` and checks that each
answer has a documented status and content type, that its body (problems included) validates
against the documented schema, that documented headers are present, and that nothing is a 500.
Bounded: a fixed seed and example count, derandomized, so CI sees the same requests every run.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from redis import Redis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from libs.security import KeySource, TokenVerifier
from libs.settings import Environment
from services.auth.app import create_app as create_auth
from services.auth.settings import AuthSettings
from services.brand.app import create_app as create_brand
from services.brand.settings import BrandSettings
from services.campaign.app import create_app as create_campaign
from services.campaign.campaigns.brand_client import BrandClient
from services.campaign.settings import CampaignSettings
from tests.conftest import REDIS_TEST_DB
from tests.support.servers import create_database, drop_database, free_port

SEED = 20_240_601
EXAMPLES = 4
"""Examples per operation and phase: enough to reach each answer shape, small enough for CI."""
REQUEST_TIMEOUT = 5.0
CHECKS: list[Any] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXCLUDED_PATHS = {
    # Server-sent events never end on their own: a request would only stop at the timeout, and
    # their answers are covered by tests/gateway/ops/test_stream.py (their problems are checked
    # by the same code as every other gateway route).
    "/api/campaigns/{campaign_id}/stream",
    "/api/ops/queues/stream",
}
PASSWORD = "correct horse battery staple"


@dataclass
class Running:
    """The gateway's URL and an owner's headers in a real organization with a few real resources."""

    url: str
    headers: dict[str, str]
    ids: dict[str, str]


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="conformance-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def _seed(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """Sign up through the gateway, then create a brand, a campaign and a lead; return the headers and their ids."""
    with httpx.Client(base_url=url, timeout=10.0) as client:
        signup = client.post(
            "/api/auth/signup",
            json={"organization_name": "Conformance", "email": "owner@conformance.example", "password": PASSWORD},
        )
        assert signup.status_code == 201, signup.text
        headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
        brand = client.post(
            "/api/brands",
            headers=headers,
            json={"name": "Acme", "website": "https://acme.example", "postal_address": "1 Main St, Springfield"},
        )
        assert brand.status_code == 201, brand.text
        campaign = client.post(
            "/api/campaigns", headers=headers, json={"name": "Spring", "brand_id": brand.json()["id"]}
        )
        assert campaign.status_code == 201, campaign.text
        lead = client.post("/api/leads", headers=headers, json={"email": "lead@customer.example", "first_name": "Lee"})
        assert lead.status_code == 201, lead.text
    ids = {"brand_id": brand.json()["id"], "campaign_id": campaign.json()["id"], "lead_id": lead.json()["id"]}
    return headers, ids


@pytest.fixture(scope="module")
def running(
    pg_server_url: str, template_db: str, redis_server_url: str, signer: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """The whole API behind one gateway on a fresh database, served on a loopback port."""
    database_url = create_database(pg_server_url, template=template_db)
    redis_url = redis_server_url.rsplit("/", 1)[0] + f"/{REDIS_TEST_DB}"
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    data_dir = Path(tmp_path_factory.mktemp("conformance"))
    common: dict[str, Any] = {
        "env": Environment.TEST,
        "database_url": database_url,
        "redis_url": redis_url,
        "data_dir": data_dir,
    }
    auth = create_auth(AuthSettings(**common, database_pool_size=4))
    jwks = httpx.AsyncClient(transport=httpx.ASGITransport(app=auth), timeout=5.0)  # type: ignore[arg-type]

    def verifier() -> TokenVerifier:
        source = KeySource(url="http://auth.internal/api/auth/jwks.json", client=jwks)
        return TokenVerifier(source, issuer="tidewater", audience="tidewater-api")

    brand = create_brand(BrandSettings(**common), verifier=verifier())
    campaign = create_campaign(
        CampaignSettings(**common),
        verifier=verifier(),
        brand_client=BrandClient("http://brand.internal", transport=httpx.ASGITransport(app=brand)),  # type: ignore[arg-type]
    )
    gateway = create_gateway(
        GatewaySettings(**common, readiness_timeout=2.0),
        upstream_apps={"auth": auth, "brand": brand, "campaign": campaign},
    )
    server, thread, url = _serve(gateway)
    try:
        headers, ids = _seed(url)
        yield Running(url=url, headers=headers, ids=ids)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        redis.flushdb()
        redis.close()
        drop_database(pg_server_url, database_url)


@pytest.fixture(scope="module")
def api_schema(running: Running) -> BaseSchema:
    """The merged document as the gateway serves it, set up for a bounded, reproducible run."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": running.url,
            "request-timeout": REQUEST_TIMEOUT,
            "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{running.url}/api/openapi.json", config=config)
    return schema.exclude(path=sorted(EXCLUDED_PATHS))


def _use_real_resources(case: Case[Any], ids: dict[str, str]) -> None:
    # Random ids only ever reach the 404 answer; every other case names the organization's real
    # brand, campaign or lead, so the success answers of those routes are checked as well.
    if not case.path_parameters or uuid.uuid5(uuid.NAMESPACE_URL, repr(case.path_parameters)).int % 2:
        return
    for name, value in ids.items():
        if name in case.path_parameters:
            case.path_parameters[name] = value


def _check(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, running: Running, seen: Counter[int]
) -> str | None:
    """Run ``EXAMPLES`` cases of ``operation``; return the first failure's report, if any."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the report is the first failing request
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case[Any]) -> None:
        _use_real_resources(case, running.ids)
        response = case.call_and_validate(
            base_url=running.url, headers=running.headers, checks=CHECKS, timeout=REQUEST_TIMEOUT
        )
        seen[response.status_code] += 1

    try:
        run()
    except Unsatisfiable:
        # Nothing of this operation can be made invalid (no parameters or body, or only path
        # parameters that must stay URL-safe): there is no negative case to send.
        return None
    except (Exception, FailureGroup) as exc:  # every kind of failure is reported, none is skipped
        return f"{operation.label} ({mode.value}): {exc}"
    return None


@pytest.mark.timeout(240)
def test_every_answer_matches_the_document(api_schema: BaseSchema, running: Running) -> None:
    started = time.monotonic()
    failures: list[str] = []
    operations = 0
    seen: Counter[int] = Counter()
    for result in api_schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the document cannot be read: {result.err()}")
            continue
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = _check(operation, mode, running, seen)
            if failure is not None:
                failures.append(failure)
    assert operations > 90, f"only {operations} operations in the document"
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures)
    # The run reached the success answers and the problems alike, not only one kind.
    assert {200, 201, 204, 400, 401, 403, 404, 422} <= set(seen), seen
    assert sum(seen.values()) > 4 * operations, seen
    assert time.monotonic() - started < 100, "the run must stay bounded"
