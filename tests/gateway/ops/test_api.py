"""The queue API, its actions and /metrics, against real jobs and ledger rows."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from libs.db.session import system_session
from libs.queue import QueueName, get_queue
from tests.gateway.ops.conftest import EDGE, JOBS, Ops, run_jobs
from tests.gateway.ops.factories import seed_campaign


def test_the_queue_picture_shows_counts_throughput_workers_and_unknown_messages(ops: Ops) -> None:
    run_jobs(ops.redis)
    seeded = seed_campaign(ops.engine, statuses=["unknown", "sent", "unknown"])
    r = ops.client.get("/api/ops/queues", headers=ops.operator())
    assert r.status_code == 200
    body = r.json()
    email = next(q for q in body["queues"] if q["name"] == "email")
    assert (email["queued"], email["failed"], email["finished_15m"], email["failed_15m"]) == (2, 2, 3, 2)
    assert email["throughput_per_minute"]["1m"] == 5.0
    assert email["oldest_waiting_seconds"] is not None
    assert body["workers"] == []
    assert body["unknown_count"] == 2
    assert {m["id"] for m in body["unknown"]} == {str(seeded.message_ids[0]), str(seeded.message_ids[2])}


def test_requeue_failed_jobs_by_id_then_all(ops: Ops) -> None:
    run_jobs(ops.redis)
    r = ops.client.post(
        "/api/ops/queues/failed/requeue", headers=ops.operator(), json={"job_ids": ["email_bad_0", "nope"]}
    )
    assert r.status_code == 200
    assert r.json() == {"requeued": ["email_bad_0"], "missing": ["nope"]}
    assert FailedJobRegistry("email", connection=ops.redis).get_job_ids() == ["email_bad_1"]
    r = ops.client.post("/api/ops/queues/failed/requeue", headers=ops.operator(), json={})
    assert r.json()["requeued"] == ["email_bad_1"]
    assert get_queue(QueueName.EMAIL, ops.redis).count == 4
    bad = ops.client.post("/api/ops/queues/failed/requeue", headers=ops.operator(), json={"queues": ["nope"]})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "queues"


def _enqueue_like_the_ticker(ops: Ops, message_ids: list[str], job_id: str) -> Job:
    job = get_queue(QueueName.EMAIL, ops.redis).enqueue(f"{JOBS}.succeed", message_ids, job_id=job_id)
    for message_id in message_ids:
        ops.redis.set(f"tw:job-of:{message_id}", job_id)
    return job


def test_pause_cancels_the_campaigns_waiting_jobs_and_resume_reactivates_it(ops: Ops) -> None:
    ours = seed_campaign(ops.engine, statuses=["queued", "queued", "sent"])
    other = seed_campaign(ops.engine, statuses=["queued"])
    mine = [str(m) for m in ours.message_ids[:2]]
    only_ours = _enqueue_like_the_ticker(ops, mine[:1], "job_ours")
    mixed = _enqueue_like_the_ticker(ops, [mine[1], str(other.message_ids[0])], "job_mixed")

    r = ops.client.post(f"/api/ops/campaigns/{ours.campaign_id}/pause", headers=ops.operator())
    assert r.status_code == 200, r.text
    assert r.json() == {
        "campaign_id": str(ours.campaign_id), "status": "paused", "queued_messages": 2, "cancelled": 1, "kept": 1
    }  # fmt: skip
    assert Job.fetch(only_ours.id, connection=ops.redis, serializer=JSONSerializer).get_status() == JobStatus.CANCELED
    assert Job.fetch(mixed.id, connection=ops.redis, serializer=JSONSerializer).get_status() == JobStatus.QUEUED
    with system_session(ops.engine) as session:
        conn = session.connection()
        assert (
            conn.execute(sa.text("SELECT status FROM campaigns WHERE id = :id"), {"id": ours.campaign_id}).scalar()
            == "paused"
        )
        statuses = conn.execute(
            sa.text("SELECT DISTINCT status FROM enrollments WHERE campaign_id = :id"), {"id": ours.campaign_id}
        )
        assert {row[0] for row in statuses} == {"paused"}
        ledger = conn.execute(
            sa.text("SELECT count(*) FROM messages WHERE campaign_id = :id AND status = 'queued'"),
            {"id": ours.campaign_id},
        )
        assert ledger.scalar() == 2, "the ledger keeps the truth: the messages are still to send"

    again = ops.client.post(f"/api/ops/campaigns/{ours.campaign_id}/pause", headers=ops.operator())
    assert again.status_code == 409
    r = ops.client.post(f"/api/ops/campaigns/{ours.campaign_id}/resume", headers=ops.operator())
    assert r.status_code == 200
    assert r.json()["status"] == "active"
    with system_session(ops.engine) as session:
        conn = session.connection()
        assert (
            conn.execute(sa.text("SELECT status FROM campaigns WHERE id = :id"), {"id": ours.campaign_id}).scalar()
            == "active"
        )
    assert ops.client.post(f"/api/ops/campaigns/{uuid.uuid4()}/pause", headers=ops.operator()).status_code == 404
    assert (
        ops.client.post(
            f"/api/ops/campaigns/{ours.campaign_id}/pause", headers=ops.customer_admin(ours.org_id)
        ).status_code
        == 403
    )


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_show_queues_durations_ledger_outcomes_and_gateway_requests(
    ops: Ops, database_url: str, redis_url: str
) -> None:
    run_jobs(ops.redis)
    seed_campaign(ops.engine, statuses=["sent", "sent", "held", "failed"], hold_reason="quiet_hours")
    for _ in range(3):
        assert ops.client.get("/api/brands/x", headers=ops.customer_admin()).status_code == 200
    assert ops.client.get("/api/brands/x").status_code == 401

    r = ops.client.get("/metrics", headers=ops.operator())
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    m = _metrics(r.text)
    assert m[("tidewater_queue_jobs", (("queue", "email"), ("state", "failed")))] == 2
    assert m[("tidewater_queue_jobs", (("queue", "email"), ("state", "queued")))] == 2
    assert m[("tidewater_job_duration_seconds_count", (("queue", "email"),))] == 5
    assert m[("tidewater_messages", (("channel", "email"), ("status", "sent")))] == 2
    assert m[("tidewater_messages_held", (("channel", "email"), ("reason", "quiet_hours")))] == 1
    assert m[("tidewater_gateway_requests_total", (("status", "2xx"), ("upstream", "brand")))] == 3
    assert m[("tidewater_gateway_requests_total", (("status", "4xx"), ("upstream", "brand")))] == 1
    assert m[("tidewater_gateway_request_seconds_count", (("upstream", "brand"),))] == 4

    assert ops.client.get("/metrics").status_code == 401
    assert ops.client.get("/metrics", headers=ops.customer_admin()).status_code == 403


def test_metrics_accept_the_configured_token(database_url: str, redis_url: str, signer) -> None:  # type: ignore[no-untyped-def]
    from litestar.testing import TestClient

    from gateway.app import create_app
    from tests.gateway.apps import create_echo_app
    from tests.gateway.ops.apps import create_auth_app
    from tests.gateway.ops.conftest import gateway_settings

    apps = {"auth": create_auth_app(signer), "brand": create_echo_app("brand"), "campaign": create_echo_app("campaign")}
    gateway = create_app(
        gateway_settings(database_url, redis_url, metrics_token="scrape-me-please"), upstream_apps=apps
    )
    with TestClient(gateway, base_url=EDGE) as client:
        assert client.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"}).status_code == 200
        assert client.get("/metrics", headers={"Authorization": "Bearer scrape-me-not"}).status_code == 401
