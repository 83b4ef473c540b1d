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
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from redis import Redis

from libs.db.session import make_engine
from tests.conftest import REDIS_TEST_DB
from tests.support.multihost import Cluster, Customer, deployment, received, wait_until
from tests.support.netns import namespaces_available
from tests.support.servers import create_database, drop_database
from tests.test_journey import ok

pytestmark = [
    pytest.mark.e2e,
    # Without root (network namespaces) the test is skipped, except under CI, where it must run.
    pytest.mark.skipif(
        not namespaces_available() and not os.environ.get("CI"), reason="needs root for network namespaces"
    ),
]

OPERATOR = "ops@tidewater-multihost.example"
LEADS = 40
STEPS = 2
SETTLE_TIMEOUT = 150.0


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, pg_server_url: str, template_db: str, redis_server_url: str
) -> Iterator[Cluster]:
    database_url = create_database(pg_server_url, template=template_db)
    redis_url = redis_server_url.rsplit("/", 1)[0] + f"/{REDIS_TEST_DB}"
    Redis.from_url(redis_url).flushdb()
    base = tmp_path_factory.mktemp("multihost")
    try:
        # A slow mail server (50 ms a message) so that the kill lands while sends are in flight;
        # a short worker lease so that what the killed worker held is settled within seconds.
        with deployment(
            base, database_url, redis_url, apps=2, workers=2, smtp_delay=0.05, extra_env={"SDR_WORKER_ALIVE_TTL": "3"}
        ) as built:
            yield built
    finally:
        drop_database(pg_server_url, database_url)


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
    customer = Customer.sign_up(first, cluster)

    # --- a CSV import: received by app1, run by a worker host that never saw the file ---------
    emails = [f"lead{i}@d{i}.multihost.example" for i in range(LEADS)]  # one domain each: no pacing
    done = customer.import_leads(emails, timeout=60)
    assert (done["status"], done["rows_imported"]) == ("completed", LEADS), done
    for host in cluster.apps:  # the receiving host kept no file; neither did the other
        assert not any(p.is_file() for p in (host.root / "campaign").rglob("*")), host.name

    campaign_id = customer.launch_email_campaign(STEPS)
    customer.api.close()

    # --- mid-run: one app host and one worker host lose power --------------------------------
    expected = {(e, f"Step {s} for Lead{i}") for i, e in enumerate(emails) for s in range(1, STEPS + 1)}
    wait_until(lambda: len(cluster.smtp.messages) >= len(expected) // 4, "a quarter of the sends", cluster, 90)
    cluster.apps[0].kill()
    cluster.workers[0].kill()
    killed_at = len(cluster.smtp.messages)
    assert killed_at < len(expected), "the kill should land while sends are in flight"

    # --- the customer carries on through the other gateway ------------------------------------
    with httpx.Client(base_url=second, timeout=30, headers=customer.auth) as survivor:
        assert ok(survivor.get(f"/api/campaigns/{campaign_id}"))["status"] == "active"

    engine = make_engine(cluster.database_url)
    try:
        resolved_once: set[str] = set()

        def settled() -> bool:
            statuses = _statuses(engine)
            unknown = _unknown_ids(engine)
            for message_id, rcpt, subject in unknown:
                if message_id in resolved_once:
                    continue
                arrived = received(cluster)[(rcpt, subject)] > 0
                outcome = "--delivered" if arrived else "--resend"
                result = _sdr(cluster, "resolve", message_id, outcome, "--operator", OPERATOR)
                assert result.returncode == 0, result.stdout + result.stderr
                resolved_once.add(message_id)
            return statuses.get("sent", 0) == len(expected) and sum(statuses.values()) == len(expected)

        created = _sdr(cluster, "create-operator", OPERATOR)
        assert created.returncode == 0, created.stdout + created.stderr
        wait_until(settled, "every message sent", cluster, SETTLE_TIMEOUT)
    finally:
        engine.dispose()

    counts = received(cluster)
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
