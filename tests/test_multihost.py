"""Tidewater on five hosts that share nothing but PostgreSQL and Redis, and two of them dying mid-run.

Hosts are Linux network namespaces on a private bridge (``tests.support.netns``); the bridge
address stands for the database host, where relays forward to the suite's PostgreSQL and
Redis and the loopback SMTP server listens. Two app hosts run the gateway and the three
services, two worker hosts run the email and inbound workers and a ticker, each process with
a data folder of its own: every command line and variable comes from the process table
(``libs.processes``) the deployment files follow.

The journey, through the first app host's gateway: sign up, a brand, a verified sender, a CSV
import (received by an app host, run by a worker host: no disk in common), a two-step email
campaign, launch. While the sends are in flight, one app host and one worker host are killed
(SIGKILL, every process at once); the customer carries on through the other gateway and the
other workers finish. An operator resolves what the killed worker left ``unknown`` (delivered
when the mail server has it, resent otherwise), and in the end every lead has every step
exactly once at the mail server.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from redis import Redis
from sqlalchemy.engine import make_url

from libs.db.session import make_engine
from libs.processes import BY_NAME, Process
from tests.conftest import REDIS_TEST_DB
from tests.support.netns import Host, Network, Target, namespaces_available, relays
from tests.support.servers import create_database, drop_database, free_port
from tests.support.smtp import SmtpServer
from tests.test_journey import local_noon_zone, ok, readme_first_session

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not namespaces_available() and not os.environ.get("SDR_REQUIRE_NETNS"),
        reason="needs root for network namespaces (CI sets SDR_REQUIRE_NETNS)",
    ),
]

SENDER = "outreach@acme-multihost.example"
SENDER_PASSWORD = "smtp-password-multihost"
OPERATOR = "ops@tidewater-multihost.example"
LEADS = 40
STEPS = 2
APP_PROCESSES = ("auth", "brand", "campaign", "gateway")
WORKER_PROCESSES = ("worker-email", "worker-inbound", "ticker")
SETTLE_TIMEOUT = 150.0


def _target(url: str, default_port: int) -> Target:
    """Where a relay reaches the server of ``url``: its TCP address, or PostgreSQL's unix socket."""
    parsed = make_url(url)
    socket_dir = parsed.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        return f"{socket_dir}/.s.PGSQL.{parsed.port or 5432}"
    return (parsed.host or "127.0.0.1", parsed.port or default_port)


def _through(url: str, address: str, port: int) -> str:
    """``url`` with its server replaced by the relay at ``address:port`` (credentials and database kept)."""
    parsed = make_url(url)
    query = {k: v for k, v in parsed.query.items() if k != "host"}
    return parsed.set(host=address, port=port, query=query).render_as_string(hide_password=False)


@dataclass
class Cluster:
    """The running hosts, the URLs every process was given, and the mail server."""

    apps: list[Host]
    workers: list[Host]
    smtp: SmtpServer
    database_url: str
    env: dict[str, str]

    def gateway(self, host: Host) -> str:
        return f"http://{host.address}:{BY_NAME['gateway'].port}"

    def logs(self) -> str:
        return "\n".join(host.logs() for host in (*self.apps, *self.workers))


def _environment(proc: Process, host: Host, shared: dict[str, str]) -> dict[str, str]:
    """What the process table says ``proc`` reads, with this host's own data folder."""
    data_dir = host.root / proc.name
    data_dir.mkdir()
    local = {
        "SDR_JWKS_URL": f"http://127.0.0.1:{BY_NAME['auth'].port}/api/auth/jwks.json",
        "SDR_AUTH_URL": f"http://127.0.0.1:{BY_NAME['auth'].port}",
        "SDR_BRAND_URL": f"http://127.0.0.1:{BY_NAME['brand'].port}",
        "SDR_CAMPAIGN_URL": f"http://127.0.0.1:{BY_NAME['campaign'].port}",
        "SDR_PUBLIC_BASE_URL": f"http://{host.address}:{BY_NAME['gateway'].port}",
    }
    given = {**shared, **local}
    env = {name: given[name] for name in proc.allowed if name in given}
    missing = set(proc.env) - set(env)
    assert not missing, f"{proc.name} needs {sorted(missing)}"
    # Outside the table: the interpreter's own PATH, the host's folder, and what a test needs
    # of a production system (an SMTP server on a private address; a short worker lease).
    env.update({"PATH": os.environ["PATH"], "HOME": str(host.root), "SDR_DATA_DIR": str(data_dir)})
    env.update({k: v for k, v in shared.items() if k in _TEST_ONLY.get(proc.name, ())})
    return env


_TEST_ONLY = {"brand": ("SDR_SMTP_ALLOW_PRIVATE_HOSTS",)}


def _start(host: Host, names: tuple[str, ...], shared: dict[str, str]) -> None:
    for name in names:
        proc = BY_NAME[name]
        argv = [sys.executable, "-m", "libs.cli", *proc.args]
        host.start(name, argv, _environment(proc, host, shared))


def _wait(check: Callable[[], Any], what: str, cluster: Cluster | None, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{cluster.logs() if cluster else ''}")


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, pg_server_url: str, template_db: str, redis_server_url: str
) -> Iterator[Cluster]:
    database_url = create_database(pg_server_url, template=template_db)
    redis_url = redis_server_url.rsplit("/", 1)[0] + f"/{REDIS_TEST_DB}"
    Redis.from_url(redis_url).flushdb()
    base = tmp_path_factory.mktemp("multihost")
    try:
        with Network(base, subnet=50 + os.getpid() % 200) as net:
            db = net.gateway_address
            pg_port, redis_port = free_port(), free_port()
            with (
                relays([((db, pg_port), _target(database_url, 5432)), ((db, redis_port), _target(redis_url, 6379))]),
                SmtpServer(credentials={SENDER: SENDER_PASSWORD}, host=db, data_delay=0.05) as smtp,
            ):
                shared = {
                    "SDR_ENV": "production",
                    "SDR_SECRET_KEY": secrets.token_urlsafe(32),
                    "SDR_DATABASE_URL": _through(database_url, db, pg_port),
                    "SDR_REDIS_URL": _through(redis_url, db, redis_port),
                    "SDR_INBOUND_EMAIL_SECRET": secrets.token_urlsafe(24),
                    "SDR_WORKER_ALIVE_TTL": "3",
                    "SDR_LOG_LEVEL": "WARNING",
                    "SDR_SMTP_ALLOW_PRIVATE_HOSTS": "true",
                }
                apps = [net.host("app1"), net.host("app2")]
                workers = [net.host("work1"), net.host("work2")]
                built = Cluster(apps, workers, smtp, database_url, shared)
                for host in apps:
                    _start(host, APP_PROCESSES, shared)
                for host in workers:
                    _start(host, WORKER_PROCESSES, shared)
                for host in apps:
                    url = f"{built.gateway(host)}/readyz"
                    _wait(_green(url), f"{url} green", built, 180)
                yield built
    finally:
        drop_database(pg_server_url, database_url)


def _green(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=2).status_code == 200


def _counts(cluster: Cluster) -> Counter[tuple[str, str]]:
    """How many times the mail server got each (recipient, subject)."""
    seen: Counter[tuple[str, str]] = Counter()
    for message in list(cluster.smtp.messages):
        seen[(message.rcpt_tos[0].lower(), str(message.parsed()["Subject"]))] += 1
    return seen


def _statuses(engine: sa.Engine) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(dict(conn.execute(sa.text("SELECT status, count(*) FROM messages GROUP BY status")).all()))


def _sdr(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cluster.env, "SDR_DATABASE_URL": cluster.database_url}
    env.pop("SDR_REDIS_URL")  # the operator's machine: only the database is needed to decide
    return subprocess.run(
        [sys.executable, "-m", "libs.cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_journey_across_hosts_survives_losing_an_app_host_and_a_worker_host(cluster: Cluster) -> None:
    first, second = (cluster.gateway(host) for host in cluster.apps)
    signup_body, brand_body = readme_first_session()
    with httpx.Client(base_url=first, timeout=30) as anonymous:
        session = ok(anonymous.post("/api/auth/signup", json=signup_body), 201)
    auth = {"Authorization": f"Bearer {session['access_token']}"}
    api = httpx.Client(base_url=first, timeout=30, headers=auth)

    brand = ok(api.post("/api/brands", json=brand_body), 201)
    sender = ok(
        api.post(
            f"/api/brands/{brand['id']}/senders",
            json={
                "kind": "email",
                "from_name": "Ada at Acme",
                "from_address": SENDER,
                "smtp_host": cluster.smtp.host,
                "smtp_port": cluster.smtp.port,
                "smtp_security": "none",
                "smtp_username": SENDER,
                "smtp_password": SENDER_PASSWORD,
            },
        ),
        201,
    )
    ok(api.post(f"/api/brands/{brand['id']}/senders/{sender['id']}/verify"), 200)

    # --- a CSV import: received by app1, run by a worker host that never saw the file ---------
    zone = local_noon_zone()
    emails = [f"lead{i}@d{i}.multihost.example" for i in range(LEADS)]  # one domain each: no pacing
    csv = "first_name,email,timezone\n" + "".join(f"Lead{i},{e},{zone}\n" for i, e in enumerate(emails))
    upload = ok(api.post("/api/leads/imports", files={"file": ("leads.csv", csv.encode(), "text/csv")}), 202)
    done = _wait(
        lambda: (lambda item: item if item["status"] in ("completed", "failed") else None)(
            ok(api.get(f"/api/leads/imports/{upload['id']}"))
        ),
        "the import to finish",
        cluster,
        60,
    )
    assert (done["status"], done["rows_imported"]) == ("completed", LEADS), done
    for host in cluster.apps:  # the receiving host kept no file; neither did the other
        assert not any(p.is_file() for p in (host.root / "campaign").rglob("*")), host.name

    campaign = ok(
        api.post(
            "/api/campaigns",
            json={
                "brand_id": brand["id"],
                "name": "Across hosts",
                "timezone": "UTC",
                "send_window": {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00"},
            },
        ),
        201,
    )
    for step in range(1, STEPS + 1):
        ok(
            api.post(
                f"/api/campaigns/{campaign['id']}/steps",
                json={
                    "channel": "email",
                    "delay": 0,
                    "delay_unit": "minutes",
                    "subject_template": f"Step {step} for {{{{ first_name }}}}",
                    "body_template": "Hi {{ first_name }}, a note from {{ brand.name }}.",
                },
            ),
            201,
        )
    assert ok(api.post(f"/api/campaigns/{campaign['id']}/enrollments", json={"filter": {}}))["enrolled"] == LEADS
    ok(api.post(f"/api/campaigns/{campaign['id']}/launch"))
    api.close()

    # --- mid-run: one app host and one worker host lose power --------------------------------
    expected = {(e, f"Step {s} for Lead{i}") for i, e in enumerate(emails) for s in range(1, STEPS + 1)}
    _wait(lambda: len(cluster.smtp.messages) >= len(expected) // 4, "a quarter of the sends", cluster, 90)
    cluster.apps[0].kill()
    cluster.workers[0].kill()
    killed_at = len(cluster.smtp.messages)
    assert killed_at < len(expected), "the kill should land while sends are in flight"

    # --- the customer carries on through the other gateway ------------------------------------
    with httpx.Client(base_url=second, timeout=30, headers=auth) as survivor:
        assert ok(survivor.get(f"/api/campaigns/{campaign['id']}"))["status"] == "active"

    engine = make_engine(cluster.database_url)
    try:
        resolved_once: set[str] = set()

        def settled() -> bool:
            statuses = _statuses(engine)
            unknown = _unknown_ids(engine)
            for message_id, rcpt, subject in unknown:
                if message_id in resolved_once:
                    continue
                received = _counts(cluster)[(rcpt, subject)] > 0
                outcome = "--delivered" if received else "--resend"
                result = _sdr(cluster, "resolve", message_id, outcome, "--operator", OPERATOR)
                assert result.returncode == 0, result.stdout + result.stderr
                resolved_once.add(message_id)
            return statuses.get("sent", 0) == len(expected) and sum(statuses.values()) == len(expected)

        created = _sdr(cluster, "create-operator", OPERATOR)
        assert created.returncode == 0, created.stdout + created.stderr
        _wait(settled, "every message sent", cluster, SETTLE_TIMEOUT)
    finally:
        engine.dispose()

    counts = _counts(cluster)
    assert set(counts) == expected, sorted(set(counts) ^ expected)[:5]
    twice = {key: n for key, n in counts.items() if n > 1}
    assert twice == {}, f"sent more than once: {twice}"


def _unknown_ids(engine: sa.Engine) -> list[tuple[str, str, str]]:
    """The messages left ``unknown``: id, recipient and the subject they were frozen with."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT m.id::text, lower(l.email), m.subject FROM messages m JOIN leads l ON l.id = m.lead_id"
                " WHERE m.status = 'unknown'"
            )
        ).all()
    return [(str(a), str(b), str(c or "")) for a, b, c in rows]
