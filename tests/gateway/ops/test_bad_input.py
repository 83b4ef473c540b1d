"""Bad input on the gateway's own routes and on /ops/rq: a 4xx problem, never a 500."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from libs.queue import QueueName, get_queue
from tests.gateway.ops.conftest import Ops, run_jobs

PROBLEM = "application/problem+json"
JSON = {"content-type": "application/json"}
UNDECODABLE = {
    "deep-list": b"[" * 100_000,
    "deep-object": b'{"a":' * 5_000,
    "invalid-utf8": b'{"job_ids": ["\xff"]}',
}
JSON_ROUTES = [
    "/api/ops/queues/failed/requeue",
    "/api/ops/messages/resolve",
    f"/api/ops/messages/{uuid.uuid4()}/resolve",
]


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_a_body_the_decoder_cannot_take_is_a_400_problem(ops: Ops, path: str) -> None:
    for name, body in UNDECODABLE.items():
        r = ops.client.post(path, content=body, headers={**JSON, **ops.operator()})
        problem = _problem(r, 400)
        assert problem["code"] == "BadRequest", name
        assert problem["errors"][0]["field"] == "body", name


def test_a_nul_in_a_json_string_is_a_422_naming_the_field(ops: Ops) -> None:
    r = ops.client.post(
        "/api/ops/queues/failed/requeue", content=b'{"job_ids": ["a", "b\\u0000"]}', headers={**JSON, **ops.operator()}
    )
    assert _problem(r, 422)["errors"] == [
        {"field": "job_ids.1", "message": "must not contain NUL characters", "source": "body"}
    ]


def test_a_nul_in_a_query_parameter_of_an_own_route_is_a_fast_422(ops: Ops) -> None:
    started = time.perf_counter()
    r = ops.client.get("/api/ops/queues?queue=%00", headers=ops.operator())
    assert time.perf_counter() - started < 0.5
    assert _problem(r, 422)["errors"][0]["field"] == "queue"


def test_requeueing_an_unknown_job_on_the_dashboard_is_a_404_problem(ops: Ops) -> None:
    run_jobs(ops.redis, ok=0, failed=1, waiting=0)
    r = ops.client.post("/ops/rq/job/no-such-job/requeue", headers=ops.operator())
    problem = _problem(r, 404)
    assert problem["code"] == "NotFound"
    assert problem["instance"] == "/ops/rq/job/no-such-job/requeue"
    # The other views that fetch a job by id answer the same.
    for url in ("/ops/rq/0/view/job/no-such-job", "/ops/rq/0/data/job/no-such-job.json"):
        assert _problem(ops.client.get(url, headers=ops.operator()), 404)["code"] == "NotFound", url
    # A job that exists is still requeued.
    r = ops.client.post("/ops/rq/job/email_bad_0/requeue", headers=ops.operator())
    assert r.status_code == 200, r.text[:300]


def test_requeueing_a_job_that_has_not_failed_is_a_409_problem(ops: Ops) -> None:
    run_jobs(ops.redis, ok=1, failed=0, waiting=1)
    queued = get_queue(QueueName.EMAIL, ops.redis).count
    for job_id in ("email_ok_0", "email_wait_0"):
        r = ops.client.post(f"/ops/rq/job/{job_id}/requeue", headers=ops.operator())
        assert _problem(r, 409)["code"] == "Conflict", job_id
    assert get_queue(QueueName.EMAIL, ops.redis).count == queued
