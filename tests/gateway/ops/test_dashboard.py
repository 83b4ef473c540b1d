"""rq-dashboard under /ops/rq: every link works under the prefix, only operators get in, actions are CSRF-safe."""

from __future__ import annotations

import json
import re
import uuid
from html.parser import HTMLParser
from typing import Any

import pytest
from redis import Redis
from rq.registry import FailedJobRegistry

from gateway.ops.dashboard import is_action
from libs.queue import QueueName, get_queue
from tests.gateway.ops.conftest import EDGE, JOBS, Ops, run_jobs

PREFIX = "/ops/rq"
REGISTRIES = ("queued", "scheduled", "deferred", "started", "finished", "failed", "canceled")


class Links(HTMLParser):
    """Every href and src of a page, and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("href", "src"):
            value = found.get(name)
            if value and not value.startswith(("#", "http://python-rq", "https://github.com", "<%")):
                self.urls.append(value)
        self._in_script = tag == "script" and "src" not in found

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def page(ops: Ops, url: str, **kwargs: Any) -> Links:
    r = ops.client.get(url, **kwargs)
    assert r.status_code == 200, (url, r.status_code, r.text[:300])
    links = Links()
    links.feed(r.text)
    return links


def failed_count(redis: Redis, queue: str = "email") -> int:
    return FailedJobRegistry(queue, connection=redis).get_job_count(cleanup=False)


def test_an_operator_can_follow_every_link_asset_and_data_url(ops: Ops) -> None:
    run_jobs(ops.redis)
    run_jobs(ops.redis, queue=QueueName.SMS, ok=1, failed=1, waiting=0)
    job_ids = ["email_bad_0", "email_ok_0", "email_wait_0", "sms_bad_0"]
    assert ops.login().status_code == 303

    seen: dict[str, int] = {}
    todo = [f"{PREFIX}/", f"{PREFIX}/0/view/jobs", f"{PREFIX}/0/view/workers"]
    todo += [f"{PREFIX}/0/view/job/{job_id}" for job_id in job_ids]
    prefixes: set[str] = set()
    actions: set[str] = set()
    while todo:
        url = todo.pop()
        if url in seen or url in actions:
            continue
        if is_action(url.removeprefix(PREFIX)):
            actions.add(url)  # a button the page's script turns into a POST: tested below, never fetched
            continue
        r = ops.client.get(url)
        seen[url] = r.status_code
        if r.status_code != 200 or "text/html" not in r.headers.get("content-type", ""):
            continue
        links = Links()
        links.feed(r.text)
        todo.extend(u for u in links.urls if u not in seen)
        script = "\n".join(links.scripts)
        # The scripts build their data URLs from rq_url_prefix: it must be the mount.
        prefixes.update(re.findall(r'var url = "([^"]*)"', script))
        todo.extend(u for u in re.findall(r'href="(/[^"<]+)"', r.text) if u not in seen)
    assert prefixes == {f"{PREFIX}/"}
    assert actions
    assert all(url.startswith(PREFIX) for url in actions)
    assert all(url.startswith(PREFIX) for url in seen), [u for u in seen if not u.startswith(PREFIX)]
    assert any("/static/js/" in u for u in seen)
    assert any("/static/css/" in u for u in seen)
    assert any(u.endswith("favicon.ico") for u in seen)

    # The JSON the pages' scripts fetch (url_for, url_for_jobs_data, url_for_single_job_data)...
    data = [f"{PREFIX}/0/data/queues.json", f"{PREFIX}/0/data/workers.json", f"{PREFIX}/"]
    data += [f"{PREFIX}/0/data/jobs/{q}/{reg}/8/asc/1.json" for q in ("email", "sms") for reg in REGISTRIES]
    data += [f"{PREFIX}/0/data/job/{job_id}.json" for job_id in job_ids]
    for url in data:
        r = ops.client.get(url)
        seen[url] = r.status_code
        if url.endswith(".json"):
            body = r.json()
            # ... and every page link inside that JSON (queue rows, pagination).
            for link in re.findall(r'"(/ops/rq/[^"]+)"', json.dumps(body)):
                seen[link] = ops.client.get(link).status_code
    failures = {u: s for u, s in seen.items() if s != 200}
    assert failures == {}
    assert len(seen) > 40

    queues = ops.client.get(f"{PREFIX}/0/data/queues.json").json()["queues"]
    email = next(q for q in queues if q["name"] == "email")
    assert (email["count"], email["failed_job_registry_count"]) == (2, 2)
    assert email["failed_url"] == f"{PREFIX}/0/view/jobs/email/failed/8/asc/1"
    assert all(u.startswith(PREFIX) for q in queues for k, u in q.items() if k.endswith("_url"))


def test_the_workers_view_shows_a_busy_worker_running_a_json_job(ops: Ops, redis_url: str) -> None:
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    get_queue(QueueName.EMAIL, ops.redis).enqueue(f"{JOBS}.linger", ["m1"], 3.0, job_id="busy_job")
    worker = subprocess.Popen(
        [sys.executable, "-m", "rq.cli", "worker", "-w", "rq.worker.SimpleWorker", "--burst", "-u", redis_url,
         "-S", "rq.serializers.JSONSerializer", "email"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while ops.redis.zcard("rq:wip:email") == 0:
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.05)
        r = ops.client.get(f"{PREFIX}/0/data/workers.json", headers=ops.operator())
        assert r.status_code == 200, r.text[:300]
        [busy] = r.json()["workers"]
        assert busy["current_job"]["job_id"] == "busy_job"
        assert busy["queues"] == ["email"]
    finally:
        worker.kill()
        worker.wait(timeout=10)


PAGES = [f"{PREFIX}/", f"{PREFIX}", f"{PREFIX}/0/view/queues", f"{PREFIX}/0/view/jobs", f"{PREFIX}/0/view/workers",
         f"{PREFIX}/0/view/job/email_bad_0", f"{PREFIX}/static/js/jquery-3.5.1.min.js", f"{PREFIX}/static/css/main.css",
         f"{PREFIX}/favicon.ico", f"{PREFIX}/0/data/queues.json", f"{PREFIX}/0/data/workers.json",
         f"{PREFIX}/0/data/job/email_bad_0.json", f"{PREFIX}/0/data/jobs/email/failed/8/asc/1.json",
         "/api/ops/queues", "/metrics"]  # fmt: skip
ACTIONS = [f"{PREFIX}/requeue/email", f"{PREFIX}/job/email_bad_0/requeue", f"{PREFIX}/job/email_bad_0/delete",
           f"{PREFIX}/queue/email/failed/empty", f"{PREFIX}/queue/email/compact", "/api/ops/queues/failed/requeue",
           f"/api/ops/campaigns/{uuid.uuid4()}/pause", f"/api/ops/campaigns/{uuid.uuid4()}/resume",
           "/ops/logout"]  # fmt: skip
TRICKS = [f"{PREFIX}/..%2f..%2fapi/ops/queues", f"/{PREFIX}/", "/OPS/rq/", f"{PREFIX}/%2e%2e/",
          f"{PREFIX}//0/view/jobs",
          f"{PREFIX}/static/../0/data/queues.json"]  # fmt: skip


def test_nobody_but_an_operator_reaches_any_page_asset_or_action(ops: Ops) -> None:
    run_jobs(ops.redis)
    before = failed_count(ops.redis)
    callers = {
        "anonymous": ({}, {401}),
        "customer admin": (ops.customer_admin(), {403}),
        "member": (ops.member(), {403}),
        "forged cookie": ({"Cookie": "tw_ops=eyJzaWQiOiJ4In0.forged.sig"}, {401}),
        "bad token": ({"Authorization": "Bearer not-a-token"}, {401}),
    }
    for who, (headers, expected) in callers.items():
        for url in PAGES + TRICKS:
            r = ops.client.get(url, headers=headers, follow_redirects=False)
            web_page = r.status_code in (200, 503) and "/ops" not in r.url.path  # httpx reads //ops/rq/ as host "ops"
            assert r.status_code in expected | {404} or web_page, (who, url, r.status_code)
            if url in PAGES:
                assert r.status_code in expected, (who, url, r.status_code)
            assert "RQ dashboard" not in r.text
            assert "jQuery" not in r.text[:2000]
        for url in ACTIONS:
            r = ops.client.post(url, headers={**headers, "Origin": EDGE}, json={}, follow_redirects=False)
            assert r.status_code in expected, (who, url, r.status_code)
    assert failed_count(ops.redis) == before

    for url in PAGES:
        r = ops.client.get(url, headers=ops.operator())
        assert r.status_code == 200, (url, r.status_code)


def test_a_get_on_an_action_url_changes_nothing(ops: Ops) -> None:
    run_jobs(ops.redis)
    assert ops.login().status_code == 303
    queued = get_queue(QueueName.EMAIL, ops.redis).count
    for url in (f"{PREFIX}/requeue/email", f"{PREFIX}/job/email_bad_0/requeue", f"{PREFIX}/queue/email/compact"):
        for headers in ({}, ops.operator(), {"X-CSRFToken": ops.csrf(), "Origin": EDGE}):
            r = ops.client.get(url, headers=headers)
            assert r.status_code == 403, (url, r.status_code)
    assert failed_count(ops.redis) == 2
    assert get_queue(QueueName.EMAIL, ops.redis).count == queued


def test_a_cross_site_post_is_refused_and_a_same_origin_one_with_the_token_works(ops: Ops) -> None:
    run_jobs(ops.redis)
    assert ops.login().status_code == 303
    url = f"{PREFIX}/requeue/email"
    refused = [
        {"Origin": "https://evil.example", "X-CSRFToken": ops.csrf()},
        {"Origin": "null", "X-CSRFToken": ops.csrf()},
        {"Referer": "https://evil.example/page", "X-CSRFToken": ops.csrf()},
        {"X-CSRFToken": ops.csrf()},  # neither Origin nor Referer
        {"Origin": EDGE},  # no token
        {"Origin": EDGE, "X-CSRFToken": "0" * 64},
    ]
    for headers in refused:
        r = ops.client.post(url, headers=headers)
        assert r.status_code == 403, headers
        r = ops.client.post("/api/ops/queues/failed/requeue", headers=headers, json={})
        assert r.status_code == 403, headers
    assert failed_count(ops.redis) == 2

    r = ops.client.post(url, headers={"Origin": EDGE, "X-CSRFToken": ops.csrf()})
    assert r.status_code == 200
    assert r.json() == {"count": 2, "status": "OK"}
    assert failed_count(ops.redis) == 0

    # A bearer token cannot be attached by another site: it needs no CSRF token.
    run_jobs(ops.redis, ok=0, failed=1, waiting=0)
    ops.client.cookies.clear()
    r = ops.client.post(f"{PREFIX}/job/email_bad_0/requeue", headers=ops.operator())
    assert r.status_code == 200


def test_deleting_and_emptying_are_disabled(ops: Ops) -> None:
    run_jobs(ops.redis)
    for url in (
        f"{PREFIX}/job/email_bad_0/delete",
        f"{PREFIX}/queue/email/failed/empty",
        f"{PREFIX}/queue/email/queued/empty",
    ):
        assert ops.client.post(url, headers=ops.operator()).status_code == 403
    assert failed_count(ops.redis) == 2
    assert get_queue(QueueName.EMAIL, ops.redis).count == 2


def test_the_session_cookie_is_httponly_samesite_strict_and_signed(ops: Ops) -> None:
    r = ops.login()
    assert r.status_code == 303
    assert r.headers["location"] == f"{PREFIX}/"
    cookies = {c.split("=", 1)[0]: c for c in r.headers.get_list("set-cookie")}
    session = cookies["tw_ops"].lower()
    assert "httponly" in session
    assert "samesite=strict" in session
    assert "path=/" in session
    assert "secure" not in session, "plain HTTP here; Secure comes with HTTPS"
    assert "samesite=strict" in cookies["_csrf_token"].lower()
    assert "httponly" not in cookies["_csrf_token"].lower(), "the dashboard's script reads it"
    value = ops.client.cookies.get("tw_ops")
    assert value
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    ops.client.cookies.clear()
    assert ops.client.get(f"{PREFIX}/", headers={"Cookie": f"tw_ops={tampered}"}).status_code == 401
    assert ops.client.get(f"{PREFIX}/", headers={"Cookie": f"tw_ops={value}"}).status_code == 200


def test_https_sessions_get_secure_cookies(ops: Ops) -> None:
    ops.client.base_url = ops.client.base_url.copy_with(scheme="https")
    r = ops.client.get("/ops/login")
    assert "secure" in r.headers["set-cookie"].lower()


def test_only_operators_get_a_session(ops: Ops) -> None:
    for email, password in (("admin@customer.test", None), ("ops@tidewater.test", "wrong")):
        r = ops.login(email, password) if password else ops.login(email)
        assert r.status_code == 401
        assert "tw_ops=" not in r.headers.get("set-cookie", "").replace("tw_ops_login", "")
    form = ops.client.get("/ops/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    data = {"csrf": csrf.group(1), "email": "ops@tidewater.test", "password": "x"}
    assert ops.client.post("/ops/login", data=data, headers={"Origin": "https://evil.example"}).status_code == 403
    assert ops.client.post("/ops/login", data={**data, "csrf": "nope"}, headers={"Origin": EDGE}).status_code == 403


def test_job_data_is_escaped_scrubbed_and_the_pages_carry_a_nonce_csp(ops: Ops) -> None:
    payload = "<img src=x onerror=alert(1)> jane.doe@example.com +1 415 555 0100"
    q = get_queue(QueueName.EMAIL, ops.redis)
    q.enqueue(f"{JOBS}.fail", [payload], job_id="xss_job")
    run_jobs(ops.redis, ok=0, failed=0, waiting=0)
    headers = ops.operator()
    r = ops.client.get(f"{PREFIX}/0/view/job/xss_job", headers=headers)
    assert r.status_code == 200
    policy = r.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    assert "script-src 'self' 'nonce-" in policy
    assert "default-src 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy
    assert "<%=" not in r.text, "every Underscore interpolation escapes"
    assert "<%- d.description %>" in r.text
    assert "<%- d.exc_info %>" in r.text
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", r.text)
    inline = [attrs for attrs in inline if "text/template" not in attrs]
    assert inline == [f' nonce="{nonce.group(1)}"'], inline
    second = ops.client.get(f"{PREFIX}/0/view/job/xss_job", headers=headers).headers["content-security-policy"]
    assert second != policy, "a fresh nonce per response"

    data = ops.client.get(f"{PREFIX}/0/data/job/xss_job.json", headers=headers).json()
    text = json.dumps(data)
    assert "jane.doe@example.com" not in text
    assert "555 0100" not in text
    assert "[email]" in data["exc_info"]
    assert "[phone]" in data["description"]
    listed = ops.client.get(f"{PREFIX}/0/data/jobs/email/failed/8/asc/1.json", headers=headers).json()
    assert "jane.doe@example.com" not in json.dumps(listed)


@pytest.mark.parametrize("url", [f"{PREFIX}/", "/api/ops/queues"])
def test_an_operator_api_key_token_also_works(ops: Ops, url: str) -> None:
    assert ops.client.get(url, headers=ops.operator()).status_code == 200
