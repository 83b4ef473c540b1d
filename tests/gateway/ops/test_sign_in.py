"""Browsers without an operator session are sent to sign in and brought back; API clients keep their 401."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.ops.session import safe_next
from tests.gateway.ops.apps import PASSWORD
from tests.gateway.ops.conftest import EDGE, Ops

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def next_of(location: str) -> str | None:
    parts = urlsplit(location)
    assert parts.path == "/ops/login"
    values = parse_qs(parts.query).get("next")
    return values[0] if values else None


def sign_in(ops: Ops, next_path: str | None, *, password: str = PASSWORD) -> tuple[str, Any]:
    """Load the form (at ``?next=``) and post it as the browser would; return the form page and the answer."""
    form = ops.client.get("/ops/login", params={"next": next_path} if next_path is not None else None)
    assert form.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    kept = re.search(r'name="next" value="([^"]*)"', form.text)
    assert csrf is not None
    data = {"csrf": csrf.group(1), "email": "ops@tidewater.test", "password": password}
    if kept is not None:
        data["next"] = kept.group(1).replace("&amp;", "&")
    answer = ops.client.post("/ops/login", data=data, headers={"Origin": EDGE}, follow_redirects=False)
    return form.text, answer


def test_a_browser_without_a_session_is_sent_to_sign_in_and_comes_back(ops: Ops) -> None:
    r = ops.client.get("/ops/rq/jobs?page=2", headers={"Accept": BROWSER}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["cache-control"] == "no-store"
    assert next_of(r.headers["location"]) == "/ops/rq/jobs?page=2"

    page, answer = sign_in(ops, next_of(r.headers["location"]))
    assert 'name="next" value="/ops/rq/jobs?page=2"' in page
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ops/rq/jobs?page=2"
    dashboard = ops.client.get("/ops/rq/", headers={"Accept": BROWSER}, follow_redirects=False)
    assert dashboard.status_code == 200
    assert "RQ" in dashboard.text


def test_a_wrong_password_keeps_the_page_to_come_back_to(ops: Ops) -> None:
    _, answer = sign_in(ops, "/ops/rq/workers", password="wrong")
    assert answer.status_code == 401
    assert 'name="next" value="/ops/rq/workers"' in answer.text


def test_api_clients_keep_getting_the_401_problem(ops: Ops) -> None:
    for path, accept in (
        ("/api/ops/queues", BROWSER),  # the API never redirects
        ("/ops/rq/", "application/json"),
        ("/ops/rq/", "application/json, text/javascript, */*; q=0.01"),  # the dashboard's own AJAX
        ("/ops/rq/", "*/*"),  # curl
        ("/ops/rq/", None),
    ):
        headers = {"Accept": accept} if accept else {}
        r = ops.client.get(path, headers=headers, follow_redirects=False)
        assert r.status_code == 401, (path, accept)
        assert r.headers["content-type"].startswith("application/problem+json"), (path, accept)
    posted = ops.client.post("/ops/logout", headers={"Accept": BROWSER}, follow_redirects=False)
    assert posted.status_code == 401
    token = ops.client.get(
        "/ops/rq/", headers={"Accept": BROWSER, "Authorization": "Bearer nope"}, follow_redirects=False
    )
    assert token.status_code == 401  # a caller with a token is an API client
    customer = ops.client.get("/ops/rq/", headers={"Accept": BROWSER, **ops.customer_admin()}, follow_redirects=False)
    assert customer.status_code == 403


def test_a_forged_or_expired_session_cookie_is_sent_to_sign_in(ops: Ops) -> None:
    ops.client.cookies.set("tw_ops", "forged.value.here")
    r = ops.client.get("/ops/rq/", headers={"Accept": BROWSER}, follow_redirects=False)
    assert r.status_code == 303
    assert next_of(r.headers["location"]) == "/ops/rq/"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/ops/rq/",
        "//evil.example/ops/rq/",
        "/ops/\\evil.example",
        "/\\evil.example",
        "/api/ops/queues",
        "/ops/login",
        "/ops/logout",
        "/ops/rq/\r\nSet-Cookie: x=1",
        "/ops/rq/ x",
        "ops/rq/",
        "/ops/" + "a" * 3000,
        "",
    ],
)
def test_next_is_only_ever_a_local_operator_page(ops: Ops, target: str) -> None:
    assert safe_next(target) is None
    page, answer = sign_in(ops, target)
    assert 'name="next"' not in page
    assert answer.headers["location"] == "/ops/rq/"
    # A form that carries it anyway (forged, or edited in the page) is not followed either.
    forged_form = ops.client.get("/ops/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', forged_form.text)
    assert csrf is not None
    forged = ops.client.post(
        "/ops/login",
        data={"csrf": csrf.group(1), "email": "ops@tidewater.test", "password": PASSWORD, "next": target},
        headers={"Origin": EDGE},
        follow_redirects=False,
    )
    assert forged.status_code == 303
    assert forged.headers["location"] == "/ops/rq/"


def test_next_keeps_local_operator_pages() -> None:
    assert safe_next("/ops/rq/") == "/ops/rq/"
    assert safe_next("/ops/rq/queues/email?page=1&x=2") == "/ops/rq/queues/email?page=1&x=2"
    assert safe_next("/ops/rq") == "/ops/rq"
