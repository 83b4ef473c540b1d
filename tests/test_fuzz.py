"""Fuzzing the whole API through the gateway: no request, however malformed, gets a 5xx.

The system of ``tests/test_openapi_conformance.py`` (the gateway under uvicorn, the three real
services in-process, a fresh database, an owner's token from a real sign-up) answers three kinds
of requests, all with the owner's token:

- Schemathesis cases for every operation of the merged document, valid and invalid, with NUL
  characters and any UTF-8 allowed (a fixed seed and example count, derandomized);
- every method, OPTIONS and HEAD included, on every documented path, documented or not;
- hostile bodies and queries for every operation that takes them: invalid UTF-8, deeply nested
  JSON, huge numbers, NUL and invalid percent-encoding in query values.

The only check is that nothing is a 5xx; the conformance test checks the answers' shapes.
Bounded: the requests come in a fixed order (a fixed seed, derandomized), and each test stops
sending new ones after ``BUDGET_SECONDS``, so a slow machine covers less but never runs long.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation, BaseSchema

from tests.test_openapi_conformance import (
    EXCLUDED_PATHS,
    PASSWORD,
    Running,
    _use_real_resources,
    running,  # noqa: F401 (the running system, shared with the conformance test's fixture)
)

SEED = 20_261_202
EXAMPLES = 5
"""Cases per operation and generation mode."""
BUDGET_SECONDS = 40.0
"""Each test sends no new request after this long (and then must still have covered ``MIN_COVERED``)."""
MIN_COVERED = 20
REQUEST_TIMEOUT = 10.0
METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
OWNER_EMAIL = "owner@conformance.example"
NESTED = b"[" * 100_000 + b"]" * 100_000
"""JSON nested far past any parser's recursion limit (100 kB, well under the body limit)."""
HOSTILE_BODIES: dict[str, tuple[bytes, str]] = {
    "invalid UTF-8": (b'{"name": "\xff\xfe\xc3("}', "application/json"),
    "deeply nested": (NESTED, "application/json"),
    "nested object": (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "application/json"),
    "huge number": (b'{"name": ' + b"9" * 5_000 + b', "limit": 1e999}', "application/json"),
    "NUL in strings": (json.dumps({"name": "a\u0000b", "email": "x\u0000@y.example"}).encode(), "application/json"),
    "not JSON": (b"\x00\x01\x02 not json", "application/json"),
    "wrong type": (b"<xml/>", "application/xml"),
}
HOSTILE_QUERY_VALUES = {"NUL": "%00", "invalid UTF-8": "%ff%fe", "overlong": "%c0%af", "huge": "9" * 5_000}


class Owner:
    """The owner's headers; signs in again when a fuzzed request ended the session (logout, revocation)."""

    def __init__(self, system: Running) -> None:
        self.headers = dict(system.headers)

    def fresh(self, client: httpx.Client) -> dict[str, str]:
        if client.get("/api/auth/me", headers=self.headers).status_code == 401:
            login = client.post("/api/auth/login", json={"email": OWNER_EMAIL, "password": PASSWORD})
            assert login.status_code == 200, f"the owner cannot sign in again: {login.status_code} {login.text}"
            self.headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        return self.headers


@pytest.fixture(scope="module")
def client(running: Running) -> Iterator[httpx.Client]:  # noqa: F811
    with httpx.Client(base_url=running.url, timeout=REQUEST_TIMEOUT) as c:
        yield c


@pytest.fixture(scope="module")
def owner(running: Running) -> Owner:  # noqa: F811
    return Owner(running)


@pytest.fixture(scope="module")
def fuzz_schema(running: Running) -> BaseSchema:  # noqa: F811
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": running.url,
            "request-timeout": REQUEST_TIMEOUT,
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                "deterministic": True,
                "database": "none",
                "allow-x00": True,
                "codec": "utf-8",
            },
            "phases": {"stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{running.url}/api/openapi.json", config=config)
    return schema.exclude(path=sorted(EXCLUDED_PATHS))


def _operations(schema: BaseSchema) -> list[APIOperation[Any, Any, Any, Any]]:
    operations = []
    for result in schema.get_all_operations():
        assert not isinstance(result, Err), f"the document cannot be read: {result.err()}"
        operations.append(result.ok())
    assert len(operations) > 90, f"only {len(operations)} operations in the document"
    return operations


def _server_error(method: str, url: str, response: httpx.Response, body: bytes | None = None) -> str:
    shown = body if body is None or len(body) < 200 else body[:200] + b"..."
    return f"{method} {url} body={shown!r} -> {response.status_code}: {response.text[:500]}"


def _fuzz(
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    running: Running,  # noqa: F811
    owner: Owner,
    client: httpx.Client,
    seen: Counter[int],
    failures: list[str],
) -> None:
    headers = owner.fresh(client)

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
        response = case.call(base_url=running.url, headers=headers, timeout=REQUEST_TIMEOUT)
        seen[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(
                f"{operation.label} ({mode.value}) -> {response.status_code}: {response.text[:500]}\n"
                f"    {case.as_curl_command(headers=headers, base_url=running.url)}"
            )

    try:
        run()
    except Unsatisfiable:
        return  # nothing of this operation can be made invalid: there is no negative case to send


@pytest.mark.timeout(120)
def test_no_generated_request_gets_a_server_error(
    fuzz_schema: BaseSchema,
    running: Running,  # noqa: F811
    owner: Owner,
    client: httpx.Client,
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    seen: Counter[int] = Counter()
    failures: list[str] = []
    operations = _operations(fuzz_schema)
    covered = 0
    # Invalid cases first for every operation (where the 500s hide), then valid ones.
    for mode in (GenerationMode.NEGATIVE, GenerationMode.POSITIVE):
        for operation in operations:
            if time.monotonic() > deadline:
                break
            _fuzz(operation, mode, running, owner, client, seen, failures)
            covered += 1
    print(f"fuzzed {covered} of {2 * len(operations)} operations x modes in {BUDGET_SECONDS} s: {dict(seen)}")
    assert not failures, f"{len(failures)} server errors:\n\n" + "\n\n".join(failures)
    assert covered >= MIN_COVERED, f"only {covered} operations fuzzed in {BUDGET_SECONDS} s: {seen}"
    assert {400, 404, 422} & set(seen), seen  # the cases reached the refusals


def _concrete(path: str, ids: dict[str, str]) -> str:
    """``path`` with each ``{name}`` replaced by the organization's real resource, else a random id."""
    out = path
    for name in [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]:
        out = out.replace("{" + name + "}", ids.get(name, str(uuid.uuid5(uuid.NAMESPACE_URL, path + name))))
    return out


@pytest.mark.timeout(120)
def test_every_method_on_every_path_answers_without_a_server_error(
    running: Running,  # noqa: F811
    owner: Owner,
    client: httpx.Client,
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    document = client.get("/api/openapi.json").json()
    paths = [p for p in document["paths"] if p not in EXCLUDED_PATHS]
    assert len(paths) > 50
    failures: list[str] = []
    seen: Counter[int] = Counter()
    sent = 0
    for method in METHODS:  # DELETE last: the organization's resources stay for the other methods
        for template in paths:
            if time.monotonic() > deadline:
                break
            sent += 1
            path = _concrete(template, running.ids)
            body = b"{}" if method in ("POST", "PUT", "PATCH") else None
            extra = {"content-type": "application/json"} if body is not None else {}
            r = client.request(method, path, headers={**owner.headers, **extra}, content=body)
            seen[r.status_code] += 1
            if r.status_code == 401:
                owner.fresh(client)  # the request may have ended the session (sign-out, revoked token)
            if r.status_code >= 500:
                failures.append(_server_error(method, path, r, body))
    # A browser's preflight (no token) is answered too.
    for template in paths[:: max(1, len(paths) // 10)]:
        path = _concrete(template, running.ids)
        preflight = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
        r = client.options(path, headers=preflight)
        seen[r.status_code] += 1
        if r.status_code >= 500:
            failures.append(_server_error("OPTIONS (preflight)", path, r))
    assert not failures, f"{len(failures)} server errors:\n\n" + "\n\n".join(failures)
    assert sent >= MIN_COVERED, f"only {sent} requests in {BUDGET_SECONDS} s: {seen}"
    assert {200, 405} <= set(seen), seen


@pytest.mark.timeout(120)
def test_hostile_bodies_and_queries_are_refused_without_a_server_error(
    fuzz_schema: BaseSchema,
    running: Running,  # noqa: F811
    owner: Owner,
    client: httpx.Client,
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    failures: list[str] = []
    seen: Counter[int] = Counter()
    bodies = queries = 0
    for operation in _operations(fuzz_schema):
        if time.monotonic() > deadline:
            break
        path = _concrete(operation.path, running.ids)
        method = operation.method.upper()
        definition = operation.definition.raw
        if "requestBody" in definition:
            bodies += 1
            token = owner.fresh(client)
            for kind, (body, content_type) in HOSTILE_BODIES.items():
                headers = {**token, "content-type": content_type}
                r = client.request(method, path, headers=headers, content=body)
                seen[r.status_code] += 1
                if r.status_code >= 500:
                    failures.append(f"[{kind}] " + _server_error(method, path, r, body))
        names = [p["name"] for p in definition.get("parameters", []) if isinstance(p, dict) and p.get("in") == "query"]
        if names:
            queries += 1
            token = owner.fresh(client)
            for kind, value in HOSTILE_QUERY_VALUES.items():
                query = "&".join(f"{name}={value}" for name in names)
                url = f"{path}?{query}"
                r = client.request(method, url, headers=token)
                seen[r.status_code] += 1
                if r.status_code >= 500:
                    failures.append(f"[query {kind}] " + _server_error(method, url[:300], r))
    assert not failures, f"{len(failures)} server errors:\n\n" + "\n\n".join(failures)
    assert bodies + queries >= MIN_COVERED, f"only {bodies} bodies and {queries} queries in {BUDGET_SECONDS} s"
    assert {400, 422} & set(seen), seen
