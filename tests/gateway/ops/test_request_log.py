"""The gateway's request log line names the path the client asked for and the status it got."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from structlog.testing import capture_logs

from tests.gateway.ops.conftest import Ops

BROWSER = "text/html,application/xhtml+xml"


def _requests(logs: list[MutableMapping[str, Any]]) -> list[tuple[str, int]]:
    return [(line["path"], line["status"]) for line in logs if line["event"] == "request"]


def test_a_refused_dashboard_request_is_logged_with_its_status_and_full_path(ops: Ops) -> None:
    with capture_logs() as logs:
        anonymous = ops.client.get("/ops/rq/jobs", follow_redirects=False)
        browser = ops.client.get("/ops/rq/jobs", headers={"Accept": BROWSER}, follow_redirects=False)
        member = ops.client.get("/ops/rq/", headers=ops.member(), follow_redirects=False)
        operator = ops.client.get("/ops/rq/", headers=ops.operator(), follow_redirects=False)
        asset = ops.client.get("/ops/rq/static/favicon.ico", headers=ops.operator(), follow_redirects=False)
    statuses = (anonymous.status_code, browser.status_code, member.status_code, operator.status_code)
    assert statuses == (401, 303, 403, 200)
    assert _requests(logs) == [
        ("/ops/rq/jobs", 401),
        ("/ops/rq/jobs", 303),
        ("/ops/rq/", 403),
        ("/ops/rq/", 200),
        ("/ops/rq/static/favicon.ico", asset.status_code),
    ]
    # the refusal raised before the route also carries the request id it was logged under
    assert anonymous.headers["x-request-id"]
    assert anonymous.headers["x-request-id"] != browser.headers["x-request-id"]


def test_own_routes_are_still_logged_once_and_passing_probes_not_at_all(ops: Ops) -> None:
    with capture_logs() as logs:
        ops.client.get("/healthz")
        ops.client.get("/api/docs", headers={"X-Request-ID": "docs-1"})
        ops.client.get("/api/ops/queues")
        ops.client.get("/api/campaigns/not-a-uuid/stream", headers=ops.customer_admin())
    assert _requests(logs) == [
        ("/api/docs", 200),
        ("/api/ops/queues", 401),
        ("/api/campaigns/not-a-uuid/stream", 400),
    ]
