"""Operators resolve ``unknown`` messages through the queue API; the real campaign service shows the audit trail."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from redis import Redis
from sqlalchemy import Engine

from gateway.app import create_app
from libs.db.models.auth import User
from libs.db.session import system_session
from libs.security import Role
from libs.settings import Environment
from services.campaign.app import create_app as create_campaign_app
from services.campaign.campaigns.brand_client import BrandClient
from services.campaign.settings import CampaignSettings
from tests.gateway.apps import create_echo_app
from tests.gateway.ops.apps import ACCOUNTS, create_auth_app
from tests.gateway.ops.conftest import EDGE, Ops, gateway_settings
from tests.gateway.ops.factories import seed_campaign
from tests.support.tokens import TokenSigner

ALWAYS = {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00"}
OPERATOR_ID = ACCOUNTS["ops@tidewater.test"].user_id


@pytest.fixture
def ops(database_url: str, redis_url: str, redis: Redis, engine: Engine, signer: TokenSigner) -> Iterator[Ops]:
    """The gateway with the real campaign service behind it (the audit trail is its ``GET /api/messages/{id}``)."""
    campaign = create_campaign_app(
        CampaignSettings(env=Environment.TEST, database_url=database_url, redis_url=redis_url),
        verifier=signer.verifier(),
        brand_client=BrandClient("http://127.0.0.1:9", timeout=1.0),
    )
    apps = {"auth": create_auth_app(signer), "brand": create_echo_app("brand"), "campaign": campaign}
    with system_session(engine) as session:  # the operator the tokens and the login name
        session.add(
            User(id=OPERATOR_ID, email="ops@tidewater.test", email_normalized="ops@tidewater.test", operator=True)
        )
    gateway = create_app(gateway_settings(database_url, redis_url), upstream_apps=apps)
    with TestClient(gateway, base_url=EDGE) as client:
        yield Ops(client=client, signer=signer, redis=redis, engine=engine)


def operator(ops: Ops) -> dict[str, str]:
    return ops.signer.headers(org_id=uuid.UUID(int=1), user_id=OPERATOR_ID, operator=True, role=Role.MEMBER)


def row(ops: Ops, sql: str, **params: Any) -> Any:
    with system_session(ops.engine) as session:
        return session.execute(sa.text(sql), params).one()


def audit_trail(ops: Ops, org_id: uuid.UUID, message_id: uuid.UUID) -> dict[str, Any]:
    r = ops.client.get(f"/api/messages/{message_id}", headers=ops.customer_admin(org_id))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_delivered_moves_the_enrollment_on_and_the_audit_trail_says_who_and_when(ops: Ops) -> None:
    seeded = seed_campaign(ops.engine, statuses=["unknown"], steps=2, send_window=ALWAYS)
    [message_id] = seeded.message_ids
    r = ops.client.post(
        f"/api/ops/messages/{message_id}/resolve",
        headers=operator(ops),
        json={"outcome": "delivered", "note": "The provider's log shows 250 OK."},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    decided_at = datetime.fromisoformat(body.pop("decided_at"))
    event_id = body.pop("event_id")
    assert body == {
        "message_id": str(message_id),
        "resolved": True,
        "outcome": "delivered",
        "status": "sent",
        "reason": None,
        "detail": None,
        "enrollment": "advanced",
        "operator_id": str(OPERATOR_ID),
        "operator_email": "ops@tidewater.test",
    }
    enrollment = row(
        ops, "SELECT next_step_position, next_due_at FROM enrollments WHERE id = :id", id=seeded.enrollment_ids[0]
    )
    assert enrollment.next_step_position == 2
    assert enrollment.next_due_at == decided_at + timedelta(minutes=60)  # the next step's delay, any time allowed

    trail = audit_trail(ops, seeded.org_id, message_id)
    assert trail["status"] == "sent"
    assert trail["sent_at"] is not None
    [event] = trail["events"]
    assert (event["id"], event["type"]) == (event_id, "sent")
    assert datetime.fromisoformat(event["occurred_at"]) == decided_at
    assert event["data"]["resolution"] == {
        "outcome": "delivered",
        "operator_id": str(OPERATOR_ID),
        "operator_email": "ops@tidewater.test",
        "via": "api",
        "note": "The provider's log shows 250 OK.",
        "decided_at": decided_at.isoformat(),
    }
    again = ops.client.post(
        f"/api/ops/messages/{message_id}/resolve", headers=operator(ops), json={"outcome": "failed"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    problem = again.json()
    assert (problem["code"], problem["reason"], problem["message_status"]) == ("Conflict", "not_unknown", "sent")
    assert len(audit_trail(ops, seeded.org_id, message_id)["events"]) == 1


def test_resend_queues_it_due_now_and_failed_marks_it_failed(ops: Ops) -> None:
    seeded = seed_campaign(ops.engine, statuses=["unknown", "unknown"])
    resend_id, failed_id = seeded.message_ids
    r = ops.client.post(f"/api/ops/messages/{resend_id}/resolve", headers=operator(ops), json={"outcome": "resend"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["enrollment"]) == ("queued", "unchanged")
    queued = row(ops, "SELECT status, next_attempt_at FROM messages WHERE id = :id", id=resend_id)
    assert queued.status == "queued"
    assert queued.next_attempt_at is not None  # due now: the ticker's dispatch pass hands it to a worker
    [event] = audit_trail(ops, seeded.org_id, resend_id)["events"]
    assert (event["type"], event["data"]["reason"], event["data"]["resolution"]["outcome"]) == (
        "held",
        "operator_resend",
        "resend",
    )

    r = ops.client.post(f"/api/ops/messages/{failed_id}/resolve", headers=operator(ops), json={"outcome": "failed"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["enrollment"]) == ("failed", "completed")
    assert [e["type"] for e in audit_trail(ops, seeded.org_id, failed_id)["events"]] == ["failed"]
    assert row(ops, "SELECT status FROM enrollments WHERE id = :id", id=seeded.enrollment_ids[1]).status == "completed"


def test_a_batch_answers_for_each_message_in_order(ops: Ops) -> None:
    seeded = seed_campaign(ops.engine, statuses=["unknown", "sent", "unknown"])
    missing = uuid.uuid4()
    first, sent, last = seeded.message_ids
    r = ops.client.post(
        "/api/ops/messages/resolve",
        headers=operator(ops),
        json={"message_ids": [str(first), str(missing), str(sent), str(last), str(first)], "outcome": "failed"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["resolved"], body["refused"], body["outcome"], body["operator_id"]) == (
        2,
        2,
        "failed",
        str(OPERATOR_ID),
    )
    assert [(x["message_id"], x["resolved"], x["reason"], x["status"]) for x in body["results"]] == [
        (str(first), True, None, "failed"),
        (str(missing), False, "not_found", None),
        (str(sent), False, "not_unknown", "sent"),
        (str(last), True, None, "failed"),
    ]
    with system_session(ops.engine) as session:
        types = session.execute(
            sa.text("SELECT type, count(*) FROM message_events WHERE message_id = ANY(:ids) GROUP BY type"),
            {"ids": seeded.message_ids},
        ).all()
    assert [tuple(t) for t in types] == [("failed", 2)]


def test_two_operators_at_once_resolve_a_message_once(ops: Ops) -> None:
    seeded = seed_campaign(ops.engine, statuses=["unknown"])
    [message_id] = seeded.message_ids
    answers: list[Any] = []
    with ops.engine.connect() as blocker:
        # Both requests read the message as unknown, then queue on this lock at their conditional update.
        blocker.execute(sa.text("SELECT 1 FROM messages WHERE id = :id FOR UPDATE"), {"id": message_id})
        threads = [
            threading.Thread(
                target=lambda outcome=outcome: answers.append(
                    ops.client.post(
                        f"/api/ops/messages/{message_id}/resolve", headers=operator(ops), json={"outcome": outcome}
                    )
                )
            )
            for outcome in ("delivered", "resend")
        ]
        for thread in threads:
            thread.start()

        def waiting() -> int:
            with ops.engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND wait_event_type = 'Lock'"
                        )
                    ).scalar_one()
                )

        deadline = datetime.now() + timedelta(seconds=20)
        while waiting() < 2 and datetime.now() < deadline:
            threading.Event().wait(0.05)
        assert waiting() == 2, "both decisions must be waiting on the message at once"
        blocker.rollback()
    for thread in threads:
        thread.join(20)
    assert sorted(a.status_code for a in answers) == [200, 409]
    winner = next(a for a in answers if a.status_code == 200).json()
    loser = next(a for a in answers if a.status_code == 409).json()
    assert loser["reason"] == "not_unknown"
    assert loser["message_status"] == winner["status"]
    assert len(audit_trail(ops, seeded.org_id, message_id)["events"]) == 1


def test_only_operators_resolve_and_bad_input_names_the_field(ops: Ops) -> None:
    seeded = seed_campaign(ops.engine, statuses=["unknown"])
    path = f"/api/ops/messages/{seeded.message_ids[0]}/resolve"
    assert ops.client.post(path, json={"outcome": "delivered"}).status_code == 401
    forbidden = ops.client.post(path, headers=ops.customer_admin(seeded.org_id), json={"outcome": "delivered"})
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    batch = ops.client.post(
        "/api/ops/messages/resolve",
        headers=ops.member(),
        json={"message_ids": [str(seeded.message_ids[0])], "outcome": "delivered"},
    )
    assert batch.status_code == 403

    def field_of(response: Any) -> list[str]:
        assert response.status_code in (400, 422), response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        return [e["field"] for e in response.json()["errors"]]

    assert field_of(ops.client.post(path, headers=operator(ops), json={"outcome": "lost"})) == ["outcome"]
    assert field_of(ops.client.post(path, headers=operator(ops), json={})) == ["outcome"]
    too_long = {"outcome": "failed", "note": "x" * 1001}
    assert field_of(ops.client.post(path, headers=operator(ops), json=too_long)) == ["note"]
    extra = {"outcome": "failed", "operator": "someone else"}
    assert field_of(ops.client.post(path, headers=operator(ops), json=extra)) == ["operator"]
    many = {"outcome": "failed", "message_ids": [str(uuid.uuid4()) for _ in range(501)]}
    assert field_of(ops.client.post("/api/ops/messages/resolve", headers=operator(ops), json=many)) == ["message_ids"]
    empty = {"outcome": "failed", "message_ids": []}
    assert field_of(ops.client.post("/api/ops/messages/resolve", headers=operator(ops), json=empty)) == ["message_ids"]
    not_ids = {"outcome": "failed", "message_ids": ["nope"]}
    assert field_of(ops.client.post("/api/ops/messages/resolve", headers=operator(ops), json=not_ids)) == [
        "message_ids.0"
    ]
    missing = ops.client.post(
        f"/api/ops/messages/{uuid.uuid4()}/resolve", headers=operator(ops), json={"outcome": "failed"}
    )
    assert missing.status_code == 404
    assert row(ops, "SELECT status FROM messages WHERE id = :id", id=seeded.message_ids[0]).status == "unknown"


def test_a_browser_session_resolves_only_with_the_csrf_token(ops: Ops) -> None:
    seeded = seed_campaign(ops.engine, statuses=["unknown"])
    path = f"/api/ops/messages/{seeded.message_ids[0]}/resolve"
    assert ops.login().status_code == 303
    no_token = ops.client.post(path, json={"outcome": "delivered"}, headers={"Origin": EDGE})
    assert no_token.status_code == 403
    cross_site = ops.client.post(
        path, json={"outcome": "delivered"}, headers={"Origin": "https://evil.example", "X-CSRFToken": ops.csrf()}
    )
    assert cross_site.status_code == 403
    assert row(ops, "SELECT status FROM messages WHERE id = :id", id=seeded.message_ids[0]).status == "unknown"
    ok = ops.client.post(path, json={"outcome": "delivered"}, headers={"Origin": EDGE, "X-CSRFToken": ops.csrf()})
    assert ok.status_code == 200, ok.text
    assert (ok.json()["operator_id"], ok.json()["operator_email"]) == (str(OPERATOR_ID), "ops@tidewater.test")
