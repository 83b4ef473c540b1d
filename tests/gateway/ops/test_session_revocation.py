"""Operator sessions live server-side: logout, losing the operator flag or a password change end them at once."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from redis import Redis
from sqlalchemy import Engine

from gateway.ops.session import SESSION_COOKIE, SESSION_RECORD
from tests.gateway.ops.apps import ACCOUNTS
from tests.gateway.ops.conftest import EDGE, Ops

OPERATOR = ACCOUNTS["ops@tidewater.test"]
LIMIT = 5.0


def signed_in(ops: Ops) -> str:
    """Sign in through the form; return the session cookie's value."""
    r = ops.login()
    assert r.status_code == 303, r.text
    value = ops.client.cookies.get(SESSION_COOKIE)
    assert value
    assert ops.client.get("/api/ops/queues").status_code == 200
    return value


def with_cookie(ops: Ops, value: str) -> int:
    """Call the queue API with only this session cookie (as a copied cookie would be sent)."""
    ops.client.cookies.clear()
    ops.client.cookies.set(SESSION_COOKIE, value)
    return ops.client.get("/api/ops/queues").status_code


def refused_within(ops: Ops, value: str, started: float) -> float:
    """Seconds from ``started`` until the cookie is refused with 401 (fails past the limit)."""
    while (status := with_cookie(ops, value)) != 401:
        assert status == 200
        assert time.perf_counter() - started < LIMIT, "the session outlived its revocation"
        time.sleep(0.05)
    return time.perf_counter() - started


def report(capsys: pytest.CaptureFixture[str], action: str, seconds: float) -> None:
    with capsys.disabled():
        print(f"\n  revocation  {action:<34} refused after {seconds * 1000:8.1f} ms (limit {LIMIT:.0f} s)")


def test_a_session_cookie_is_refused_once_the_operator_logs_out(
    ops: Ops, redis: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    value = signed_in(ops)
    assert len(redis.keys(SESSION_RECORD + "*")) == 1
    started = time.perf_counter()
    r = ops.client.post("/ops/logout", headers={"Origin": EDGE, "X-CSRFToken": ops.csrf()}, follow_redirects=False)
    assert r.status_code == 303
    seconds = refused_within(ops, value, started)
    report(capsys, "operator logout (copied cookie)", seconds)
    assert redis.keys(SESSION_RECORD + "*") == []
    assert seconds < LIMIT


def test_a_session_of_someone_no_longer_an_operator_is_refused(
    ops: Ops, engine: Engine, redis: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    value = signed_in(ops)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET operator = false WHERE id = :id"), {"id": OPERATOR.user_id})
    seconds = refused_within(ops, value, started)
    report(capsys, "operator flag removed", seconds)
    assert redis.keys(SESSION_RECORD + "*") == []  # forgotten on the way
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET operator = true WHERE id = :id"), {"id": OPERATOR.user_id})
    assert with_cookie(ops, value) == 401  # ended for good, not only while the flag is off


def test_a_password_change_ends_the_operator_sessions_begun_before(ops: Ops, engine: Engine) -> None:
    value = signed_in(ops)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET password_changed_at = now() WHERE id = :id"), {"id": OPERATOR.user_id})
    assert with_cookie(ops, value) == 401
    assert ops.login().status_code == 303  # a new session begins after the change
    assert ops.client.get("/api/ops/queues").status_code == 200


def test_a_forged_session_id_in_a_well_signed_cookie_is_refused(ops: Ops, redis: Redis) -> None:
    """The cookie alone is not enough: its session must be on record."""
    value = signed_in(ops)
    redis.delete(*redis.keys(SESSION_RECORD + "*"))
    assert with_cookie(ops, value) == 401


def test_the_dashboard_page_of_an_ended_session_sends_the_browser_to_sign_in(ops: Ops) -> None:
    value = signed_in(ops)
    r = ops.client.post("/ops/logout", headers={"Origin": EDGE, "X-CSRFToken": ops.csrf()}, follow_redirects=False)
    assert r.status_code == 303
    ops.client.cookies.set(SESSION_COOKIE, value)
    r = ops.client.get("/ops/rq/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/ops/login")
