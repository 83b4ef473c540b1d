"""Benchmark scale-out: email sends and CSV imports with one worker host and with two, in one run.

Each run builds a deployment of network-namespace hosts (``tests.support.multihost``: one app
host with the gateway and the three services, then one or two worker hosts each running the
process table's email and inbound workers and a ticker), on a fresh database, and measures:

- **imports**: ``--imports`` CSV files of ``--rows`` leads uploaded at once through the gateway,
  from the first upload to the last import finished, in rows/s;
- **sends**: one email step to every imported lead, from the launch to the last message at the
  mail server, in messages/s.

It prints each figure for one and two worker hosts and their ratio, next to the mail server's
own ceiling measured in the same run (``smtplib`` clients pushing messages straight at it), so
a reader sees whether the receiving end was the limit. Every host shares this machine's
cores: on a 2-core machine the ratio shows what coordination between hosts costs (or saves),
not what more hardware would give. Needs root (network namespaces)::

    sudo uv run python -m bench.scaleout --imports 4 --rows 1000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import smtplib
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from redis import Redis

from libs.db.migrate import upgrade
from tests.support.multihost import SENDER, SENDER_PASSWORD, Customer, deployment, wait_until
from tests.support.servers import create_database, drop_database, postgres_server, redis_server
from tests.support.smtp import SmtpServer


@dataclass
class Figures:
    """One deployment's measurements."""

    workers: int
    import_rows_per_s: float
    sends_per_s: float


def _leads(imports: int, rows: int) -> list[list[str]]:
    # One recipient domain per lead: the per-domain pacing must not be what is measured.
    return [[f"lead{f}-{i}@d{f}-{i}.scale.example" for i in range(rows)] for f in range(imports)]


def run(base: Path, server: str, redis_url: str, *, workers: int, imports: int, rows: int) -> Figures:
    """Measure one deployment with ``workers`` worker hosts."""
    database_url = create_database(server)
    upgrade(database_url)
    Redis.from_url(redis_url).flushdb()
    caps = {"SDR_EMAIL_HOURLY_CAP": "1000000", "SDR_EMAIL_DAILY_CAP": "1000000"}
    try:
        with deployment(base, database_url, redis_url, apps=1, workers=workers, extra_env=caps) as cluster:
            customer = Customer.sign_up(cluster.gateway(cluster.apps[0]), cluster)
            files = _leads(imports, rows)
            started = time.perf_counter()
            ids = [customer.upload(emails, start=n * rows) for n, emails in enumerate(files)]
            for import_id in ids:
                done = customer.finished_import(import_id, timeout=600)
                assert done["status"] == "completed", done
            import_rate = imports * rows / (time.perf_counter() - started)

            total = imports * rows
            before = len(cluster.smtp.messages)
            started = time.perf_counter()
            customer.launch_email_campaign(1)
            wait_until(lambda: len(cluster.smtp.messages) - before >= total, "every send", cluster, 900)
            send_rate = total / (time.perf_counter() - started)
            customer.api.close()
            return Figures(workers, import_rate, send_rate)
    finally:
        drop_database(server, database_url)


def smtp_ceiling(messages: int, clients: int = 4) -> float:
    """Messages/s the loopback mail server accepts from plain smtplib clients on kept connections."""
    with SmtpServer(credentials={SENDER: SENDER_PASSWORD}) as smtp:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = SENDER, "lead@scale.example", "ceiling"
        message.set_content("Hi, a note.\n")

        def push(count: int) -> None:
            with smtplib.SMTP(smtp.host, smtp.port) as client:
                client.login(SENDER, SENDER_PASSWORD)
                for _ in range(count):
                    client.send_message(message)

        threads = [threading.Thread(target=push, args=(messages // clients,)) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return (messages // clients) * clients / (time.perf_counter() - started)


@contextlib.contextmanager
def servers(tmp: Path, database_url: str | None, redis_url: str | None) -> Iterator[tuple[str, str]]:
    with contextlib.ExitStack() as stack:
        if database_url:
            os.environ["SDR_TEST_DATABASE_URL"] = database_url
        if redis_url:
            os.environ["SDR_TEST_REDIS_URL"] = redis_url
        pg = stack.enter_context(postgres_server(tmp / "pg"))
        redis = stack.enter_context(redis_server(tmp / "redis"))
        yield pg, redis


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imports", type=int, default=4, help="CSV files uploaded at once")
    parser.add_argument("--rows", type=int, default=1000, help="leads per file")
    parser.add_argument("--database-url", default=os.environ.get("SDR_TEST_DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("SDR_TEST_REDIS_URL"))
    parser.add_argument("--redis-db", type=int, default=5, help="flushed: give it a database nothing else uses")
    args = parser.parse_args(argv)
    # A SIGTERM unwinds like Ctrl-C, so the hosts, namespaces and the bridge are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with (
        tempfile.TemporaryDirectory(prefix="tw-scaleout-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (pg, redis),
    ):
        redis_url = redis.rsplit("/", 1)[0] + f"/{args.redis_db}"
        total = args.imports * args.rows
        ceiling = smtp_ceiling(min(total, 2000))
        results = [
            run(Path(tmp) / f"w{n}", pg, redis_url, workers=n, imports=args.imports, rows=args.rows) for n in (1, 2)
        ]
    one, two = results
    print(f"scale-out: {args.imports} imports x {args.rows} rows, {total} email sends, {os.cpu_count()} cores shared")
    print(f"  mail server ceiling (smtplib, 4 clients): {ceiling:,.0f} messages/s")
    print(f"  {'':<22}{'1 worker host':>16}{'2 worker hosts':>16}{'ratio':>8}")
    print(
        f"  {'imports (rows/s)':<22}{one.import_rows_per_s:>16,.0f}{two.import_rows_per_s:>16,.0f}"
        f"{two.import_rows_per_s / one.import_rows_per_s:>8.2f}"
    )
    print(
        f"  {'sends (messages/s)':<22}{one.sends_per_s:>16,.1f}{two.sends_per_s:>16,.1f}"
        f"{two.sends_per_s / one.sends_per_s:>8.2f}"
    )


if __name__ == "__main__":
    main()
