"""Benchmark the sequence engine: end-to-end email steps vs raw RQ no-op jobs, ticker vs enqueue_many, RSS.

Runs against the PostgreSQL and Redis named by ``--database-url`` / ``--redis-url`` (or
``SDR_TEST_DATABASE_URL`` / ``SDR_TEST_REDIS_URL``; embedded ones otherwise), in a fresh
database and the Redis database ``--redis-db``, which it flushes. Every measurement stops
at ``--deadline`` seconds. Example::

    uv run python -m bench.worker --steps 2000 --leads 20000 --workers 2

The end-to-end rate is compared with one no-op job per message, while a send job carries a
batch of messages (``services.worker.ticker.JOB_BATCH``, 50): batching is what amortizes RQ's
per-job cost and the batch's load and gate, and the worker then spends one statement and one
commit per message (the claim of each message is also the record of the one before it),
committed while SMTP runs up to DATA on a kept connection, then the content and the final ".".
The no-op workers are configured like the send workers (their job module imported before they
register, RQ logging at WARNING), so neither side pays a start-up or logging cost the other
does not. Peak RSS is each worker's high-water mark (``VmHWM``), imports included.

On the 2-core development machine, with other work running, the end-to-end share of the no-op
rate went from 37-41% to 112% and 187% in two runs at 10,000 steps (441 and 346 messages/s;
103% at 2,000 steps): the MIME written directly (2.5 ms of CPU per message in the email package
before), a batch loaded by primary key (its plan used to filter the whole campaign), the claim
committed while SMTP runs, and 50 messages per job. Both rates move with the machine's load,
the no-op one most: compare the two figures of one run, and run it twice.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from redis import Redis
from rq import Worker
from rq.registry import FinishedJobRegistry

from libs.db.migrate import upgrade
from libs.db.session import make_engine, system_session
from libs.queue import JobSpec, QueueName, enqueue_many, get_queue
from services.worker.settings import WorkerSettings
from services.worker.ticker import JOB_BATCH, Ticker

ROOT = Path(__file__).resolve().parents[1]
NOOP = "bench.worker.noop"


def noop() -> None:
    """Do nothing: the raw cost of an RQ job."""


@contextlib.contextmanager
def servers(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """Yield (database url of a fresh migrated database, redis url)."""
    sys.path.insert(0, str(ROOT))
    from tests.support.servers import create_database, drop_database, postgres_server, redis_server

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.database_url:
            os.environ["SDR_TEST_DATABASE_URL"] = args.database_url
        if args.redis_url:
            os.environ["SDR_TEST_REDIS_URL"] = args.redis_url
        pg = stack.enter_context(postgres_server(Path(tmp)))
        redis = stack.enter_context(redis_server(Path(tmp)))
        url = create_database(pg)
        upgrade(url)
        try:
            yield url, redis.rsplit("/", 1)[0] + f"/{args.redis_db}"
        finally:
            drop_database(pg, url)


def start_workers(n: int, env: dict[str, str], code: str) -> list[subprocess.Popen[bytes]]:
    """Start ``n`` worker processes running ``code``."""
    return [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stderr=subprocess.DEVNULL) for _ in range(n)
    ]


def stop(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    """Stop the processes; return each one's peak RSS in kB (VmHWM)."""
    peaks = []
    for proc in procs:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peaks.append(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))))
        except (OSError, StopIteration):
            peaks.append(0)
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return peaks


def wait_for(predicate: Callable[[], bool], deadline: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` every ``interval`` seconds until it holds or ``deadline`` (monotonic) passes."""
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def workers_ready(redis: Redis, n: int, deadline: float) -> None:
    """Wait until ``n`` RQ workers registered."""
    if not wait_for(lambda: Worker.count(connection=redis) >= n, deadline):
        raise SystemExit("workers did not start in time")


def bench_noop(redis_url: str, n: int, workers: int, env: dict[str, str], limit: float) -> float:
    """RQ no-op jobs/s with ``workers`` SimpleWorker processes."""
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    # Configured like the send workers: the job's module imported before the worker registers
    # (run_worker imports services.worker.jobs first) and RQ logging at the same WARNING level.
    # Left to the defaults, the first job of each worker pays the import of this module (about
    # 3 s on a busy machine) and every job logs three INFO lines: a fixed cost that makes the
    # no-op rate grow with the job count, and a per-job cost the send workers do not pay.
    code = (
        "import bench.worker; from rq import SimpleWorker; from rq.serializers import JSONSerializer; "
        f"from libs.queue import get_queue, redis_from_url; r = redis_from_url({redis_url!r}); "
        "SimpleWorker([get_queue('default', r)], connection=r, serializer=JSONSerializer).work(logging_level='WARNING')"
    )
    procs = start_workers(workers, env, code)
    try:
        workers_ready(redis, workers, time.monotonic() + 120)
        specs = [JobSpec(queue=QueueName.DEFAULT, func=NOOP, job_id=f"noop_{i}") for i in range(n)]
        started = time.monotonic()
        for i in range(0, n, 1000):
            enqueue_many(redis, specs[i : i + 1000])
        registry = FinishedJobRegistry("default", connection=redis)
        wait_for(lambda: registry.count >= n, started + limit)
        elapsed = time.monotonic() - started
        done = registry.count
    finally:
        stop(procs)
    return done / elapsed


def seed(
    engine: sa.Engine, leads: int, channels: tuple[str, ...] = ("email",), smtp_port: int | None = None
) -> uuid.UUID:
    """One organization, brand, email sender, active campaign and ``leads`` enrollments due now."""
    org, brand, campaign = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    due = datetime.now(UTC) - timedelta(minutes=1)
    window = '{"weekdays": [0,1,2,3,4,5,6], "start": "00:00", "end": "24:00"}'
    with system_session(engine) as s:
        run = s.connection().execute
        run(sa.text("INSERT INTO organizations (id, name, created_at) VALUES (:o, 'Bench', now())"), {"o": org})
        run(
            sa.text(
                "INSERT INTO brands (id, org_id, name, postal_address, website, timezone, proof_points, "
                "forbidden_claims, version, created_at, updated_at) VALUES (:b, :o, 'Bench Co', '1 Main St, "
                "Springfield', 'https://bench.example', 'UTC', '[]', '[]', 1, now(), now())"
            ),
            {"b": brand, "o": org},
        )
        run(
            sa.text(
                "INSERT INTO senders (id, org_id, brand_id, kind, from_name, from_address, smtp_host, smtp_port, "
                "smtp_security, verified_at, version, created_at, updated_at) VALUES (gen_random_uuid(), :o, :b, "
                "'email', 'Sam', 'sam@bench.example', :h, :p, 'none', now(), 1, now(), now())"
            ),
            {"o": org, "b": brand, "h": "127.0.0.1" if smtp_port else None, "p": smtp_port},
        )
        run(
            sa.text(
                "INSERT INTO campaigns (id, org_id, brand_id, name, status, timezone, send_window, stop_rules, ai, "
                "version, created_at, updated_at) VALUES (:c, :o, :b, 'Bench', 'active', 'UTC', CAST(:w AS jsonb), "
                "'{}', '{\"enabled\": true}', 1, now(), now())"
            ),
            {"c": campaign, "o": org, "b": brand, "w": window},
        )
        for position, channel in enumerate(channels, start=1):
            run(
                sa.text(
                    "INSERT INTO campaign_steps (id, org_id, campaign_id, position, channel, delay_minutes, "
                    "delay_unit, business_days, subject_template, body_template, variants, created_at, updated_at) "
                    "VALUES (gen_random_uuid(), :o, :c, :p, :ch, 0, 'minutes', false, 'Hi {{ lead.first_name }}', "
                    "'Hello {{ lead.first_name }} at {{ lead.company }}.', '[]', now(), now())"
                ),
                {"o": org, "c": campaign, "p": position, "ch": channel},
            )
        run(
            sa.text(
                "INSERT INTO leads (id, org_id, email, email_normalized, first_name, company, timezone, "
                "custom_fields, status, created_at, updated_at) SELECT gen_random_uuid(), :o, "
                "'lead' || g || '@d' || (g % 500) || '.example', 'lead' || g || '@d' || (g % 500) || '.example', "
                "'Lead' || g, 'Company ' || g, 'UTC', '{}', 'active', now(), now() FROM generate_series(1, :n) g"
            ),
            {"o": org, "n": leads},
        )
        run(
            sa.text(
                "INSERT INTO enrollments (id, org_id, campaign_id, lead_id, status, next_step_position, next_due_at, "
                "created_at, updated_at) SELECT gen_random_uuid(), :o, :c, id, 'active', 1, :d, now(), now() "
                "FROM leads WHERE org_id = :o"
            ),
            {"o": org, "c": campaign, "d": due},
        )
    return campaign


def analyze(engine: sa.Engine) -> None:
    """Refresh planner statistics after seeding, as autovacuum would on a database in service."""
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()


def settings_for(database_url: str, redis_url: str, data_dir: Path, smtp_port: int) -> WorkerSettings:
    """Worker settings for a run: loopback sink, caps out of the way."""
    return WorkerSettings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=data_dir,
        smtp_sink_port=smtp_port,
        email_hourly_cap=10**9,
        email_daily_cap=10**9,
        domain_pacing_per_minute=10**9,
        ticker_batch=1000,
        repair_after_seconds=300,
        log_level="WARNING",
    )


def bench_end_to_end(
    database_url: str, redis_url: str, steps: int, workers: int, env: dict[str, str], limit: float
) -> tuple[float, list[int]]:
    """Email steps/s through ticker, gate, local writer and SMTP with ``workers`` processes; peak RSS."""
    sys.path.insert(0, str(ROOT))
    from tests.support.smtp import SmtpServer

    redis = Redis.from_url(redis_url)
    redis.flushdb()
    with SmtpServer() as smtp, tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(database_url, redis_url, Path(tmp), smtp.port)
        engine = make_engine(database_url)
        campaign = seed(engine, steps, smtp_port=smtp.port)
        analyze(engine)
        worker_env = {
            **env,
            "SDR_DATABASE_URL": database_url,
            "SDR_REDIS_URL": redis_url,
            "SDR_DATA_DIR": tmp,
            "SDR_EMAIL_HOURLY_CAP": str(10**9),
            "SDR_EMAIL_DAILY_CAP": str(10**9),
            "SDR_DOMAIN_PACING_PER_MINUTE": str(10**9),
            "SDR_LOG_LEVEL": "WARNING",
        }
        code = "from services.worker.main import run_worker; run_worker(['email'])"
        procs = start_workers(workers, worker_env, code)
        peaks: list[int] = []
        try:
            workers_ready(redis, workers, time.monotonic() + 120)
            ticker = Ticker(settings, engine, redis)
            started = time.monotonic()
            thread = threading.Thread(target=ticker.run, daemon=True)
            thread.start()
            count = sa.text("SELECT count(*) FROM messages WHERE campaign_id = :c AND status = 'sent'")

            def sent_count() -> int:
                with engine.connect() as conn:
                    return int(conn.execute(count, {"c": campaign}).scalar_one())

            # Counting a growing ledger 20 times a second competes with the workers for the two
            # cores; four times a second costs little and adds at most 0.25 s to the measured time.
            wait_for(lambda: sent_count() >= steps, started + limit, interval=0.25)
            elapsed = time.monotonic() - started
            ticker.stop()
            thread.join(10)
            sent = sent_count()
        finally:
            peaks = stop(procs)
            engine.dispose()
        received = len(smtp.messages)
    if received != sent:
        print(f"  WARNING: SMTP received {received}, ledger says {sent} sent")
    return sent / elapsed, peaks


def bench_ticker(database_url: str, redis_url: str, leads: int, limit: float) -> tuple[float, float]:
    """Messages/s the ticker turns into queued jobs for a launch of ``leads``, next to plain enqueue_many."""
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    engine = make_engine(database_url)
    seed(engine, leads)
    with tempfile.TemporaryDirectory() as tmp:
        ticker = Ticker(settings_for(database_url, redis_url, Path(tmp), 1025), engine, redis)
        started = time.monotonic()
        claimed = 0
        while claimed < leads and time.monotonic() - started < limit:
            claimed += ticker.tick().claimed
        ticker_rate = claimed / (time.monotonic() - started)
    engine.dispose()
    redis.flushdb()
    specs = [
        JobSpec(queue=QueueName.EMAIL, func="services.worker.jobs.send_messages", args=([str(uuid.uuid4())],))
        for _ in range(leads)
    ]
    started = time.monotonic()
    for i in range(0, leads, 1000):
        enqueue_many(redis, specs[i : i + 1000])
    plain_rate = leads / (time.monotonic() - started)
    queued = get_queue(QueueName.EMAIL, redis).count
    assert queued == leads, queued
    redis.flushdb()
    return ticker_rate, plain_rate


def main(argv: list[str] | None = None) -> None:
    """Run the three measurements and print a report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=10_000, help="email steps end to end (and no-op jobs)")
    parser.add_argument("--leads", type=int, default=100_000, help="leads in the ticker launch")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds each measurement may take")
    parser.add_argument("--database-url", default=os.environ.get("SDR_TEST_DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("SDR_TEST_REDIS_URL"))
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("SDR_TEST_REDIS_DB", "9")))
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with servers(args) as (database_url, redis_url):
        print(
            f"worker bench: {args.steps} steps, {args.workers} SimpleWorker processes, {args.leads} leads launch, "
            f"{JOB_BATCH} messages per send job"
        )
        noop_rate = bench_noop(redis_url, args.steps, args.workers, env, args.deadline)
        print(f"  raw RQ no-op jobs:           {noop_rate:8.0f} jobs/s")
        e2e_rate, peaks = bench_end_to_end(database_url, redis_url, args.steps, args.workers, env, args.deadline)
        share = e2e_rate / noop_rate if noop_rate else 0.0
        print(f"  end to end email steps:      {e2e_rate:8.0f} messages/s ({share:.0%} of no-op; goal >= 50%)")
        print(f"  peak RSS per worker:         {', '.join(f'{p / 1024:.0f} MB' for p in peaks)} (goal < 100 MB)")
        ticker_rate, plain_rate = bench_ticker(database_url, redis_url, args.leads, args.deadline)
        ratio = ticker_rate / plain_rate if plain_rate else 0.0
        print(f"  ticker launch:               {ticker_rate:8.0f} messages/s")
        print(f"  plain enqueue_many (1000s):  {plain_rate:8.0f} jobs/s (ticker {ratio:.0%}; goal >= 50%)")


if __name__ == "__main__":
    main()


__all__: list[Any] = ["main", "noop"]
