"""A Tidewater deployment over network-namespace hosts, from the process table: for tests and benchmarks.

:func:`deployment` builds the hosts on a private bridge (``tests.support.netns``), relays the
bridge's address to the given PostgreSQL and Redis, starts a loopback SMTP server there, and
runs each host's processes with exactly the command line and ``SDR_*`` variables the process
table (``libs.processes``) gives them, plus a data folder of the host's own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from libs.processes import BY_NAME, Process
from tests.support.netns import Host, Network, Target, relays
from tests.support.servers import free_port
from tests.support.smtp import SmtpServer
from tests.test_journey import local_noon_zone, ok, readme_first_session

APP_PROCESSES = ("auth", "brand", "campaign", "gateway")
WORKER_PROCESSES = ("worker-email", "worker-inbound", "ticker")
SENDER = "outreach@acme-multihost.example"
SENDER_PASSWORD = "smtp-password-multihost"


def relay_target(url: str, default_port: int) -> Target:
    """Where a relay reaches the server of ``url``: its TCP address, or PostgreSQL's unix socket."""
    parsed = make_url(url)
    socket_dir = parsed.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        return f"{socket_dir}/.s.PGSQL.{parsed.port or 5432}"
    return (parsed.host or "127.0.0.1", parsed.port or default_port)


def through_relay(url: str, address: str, port: int) -> str:
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


def environment(proc: Process, host: Host, shared: dict[str, str]) -> dict[str, str]:
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
    env.update({k: v for k, v in shared.items() if k in TEST_ONLY.get(proc.name, ())})
    return env


TEST_ONLY = {"brand": ("SDR_SMTP_ALLOW_PRIVATE_HOSTS",)}


def start(host: Host, names: tuple[str, ...], shared: dict[str, str]) -> None:
    for name in names:
        proc = BY_NAME[name]
        argv = [sys.executable, "-m", "libs.cli", *proc.args]
        host.start(name, argv, environment(proc, host, shared))


def wait_until(check: Callable[[], Any], what: str, cluster: Cluster | None, timeout: float) -> Any:
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


def green(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=2).status_code == 200


def received(cluster: Cluster) -> Counter[tuple[str, str]]:
    """How many times the mail server got each (recipient, subject)."""
    seen: Counter[tuple[str, str]] = Counter()
    for message in list(cluster.smtp.messages):
        seen[(message.rcpt_tos[0].lower(), str(message.parsed()["Subject"]))] += 1
    return seen


@contextlib.contextmanager
def deployment(
    base: Path,
    database_url: str,
    redis_url: str,
    *,
    apps: int,
    workers: int,
    smtp_delay: float = 0.0,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """Run ``apps`` app hosts and ``workers`` worker hosts on ``database_url`` / ``redis_url`` until exit."""
    with Network(base, subnet=50 + os.getpid() % 200) as net:
        db = net.gateway_address
        pg_port, redis_port = free_port(), free_port()
        with (
            relays(
                [((db, pg_port), relay_target(database_url, 5432)), ((db, redis_port), relay_target(redis_url, 6379))]
            ),
            SmtpServer(credentials={SENDER: SENDER_PASSWORD}, host=db, data_delay=smtp_delay) as smtp,
        ):
            shared = {
                "SDR_ENV": "production",
                "SDR_SECRET_KEY": secrets.token_urlsafe(32),
                "SDR_DATABASE_URL": through_relay(database_url, db, pg_port),
                "SDR_REDIS_URL": through_relay(redis_url, db, redis_port),
                "SDR_INBOUND_EMAIL_SECRET": secrets.token_urlsafe(24),
                "SDR_LOG_LEVEL": "WARNING",
                "SDR_SMTP_ALLOW_PRIVATE_HOSTS": "true",
                **(extra_env or {}),
            }
            app_hosts = [net.host(f"app{i}") for i in range(1, apps + 1)]
            worker_hosts = [net.host(f"work{i}") for i in range(1, workers + 1)]
            built = Cluster(app_hosts, worker_hosts, smtp, database_url, shared)
            for host in app_hosts:
                start(host, APP_PROCESSES, shared)
            for host in worker_hosts:
                start(host, WORKER_PROCESSES, shared)
            for host in app_hosts:
                url = f"{built.gateway(host)}/readyz"
                wait_until(green(url), f"{url} green", built, 180)
            yield built


@dataclass
class Customer:
    """A signed-up organization with a brand and a verified email sender, driving one gateway."""

    api: httpx.Client
    auth: dict[str, str]
    brand_id: str
    cluster: Cluster

    @classmethod
    def sign_up(cls, gateway: str, cluster: Cluster) -> Customer:
        """Sign up, describe the brand, add the cluster's SMTP server as a sender and verify it live."""
        signup_body, brand_body = readme_first_session()
        with httpx.Client(base_url=gateway, timeout=30) as anonymous:
            session = ok(anonymous.post("/api/auth/signup", json=signup_body), 201)
        auth = {"Authorization": f"Bearer {session['access_token']}"}
        api = httpx.Client(base_url=gateway, timeout=60, headers=auth)
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
        return cls(api, auth, brand["id"], cluster)

    def upload(self, emails: list[str], *, start: int = 0) -> str:
        """Upload a CSV of ``emails`` (first names ``Lead<n>`` from ``start``); return the import's id."""
        zone = local_noon_zone()
        csv = "first_name,email,timezone\n" + "".join(f"Lead{start + i},{e},{zone}\n" for i, e in enumerate(emails))
        files = {"file": ("leads.csv", csv.encode(), "text/csv")}
        return str(ok(self.api.post("/api/leads/imports", files=files), 202)["id"])

    def finished_import(self, import_id: str, *, timeout: float) -> dict[str, Any]:
        """Wait until the import has completed or failed; return it."""

        def finished() -> dict[str, Any] | None:
            item: dict[str, Any] = ok(self.api.get(f"/api/leads/imports/{import_id}"))
            return item if item["status"] in ("completed", "failed") else None

        result: dict[str, Any] = wait_until(finished, "the import to finish", self.cluster, timeout)
        return result

    def import_leads(self, emails: list[str], *, timeout: float) -> dict[str, Any]:
        """Upload ``emails`` and wait for the import."""
        return self.finished_import(self.upload(emails), timeout=timeout)

    def launch_email_campaign(self, steps: int) -> str:
        """A campaign of ``steps`` email steps without delays, open all week, every lead enrolled, launched."""
        campaign = ok(
            self.api.post(
                "/api/campaigns",
                json={
                    "brand_id": self.brand_id,
                    "name": "Across hosts",
                    "timezone": "UTC",
                    "send_window": {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00"},
                },
            ),
            201,
        )
        for step in range(1, steps + 1):
            ok(
                self.api.post(
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
        ok(self.api.post(f"/api/campaigns/{campaign['id']}/enrollments", json={"filter": {}}))
        ok(self.api.post(f"/api/campaigns/{campaign['id']}/launch"))
        return str(campaign["id"])
