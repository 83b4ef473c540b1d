"""Queue statistics against real Redis/RQ (jobs run by a real worker) and the ledger in PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import Engine

from libs import events, queue_stats
from libs.db.session import make_engine, system_session
from libs.queue import QueueName, get_queue
from tests.gateway.ops.factories import seed_campaign

JOBS = "tests.gateway.ops.jobs"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=1)
    yield engine
    engine.dispose()


def run_jobs(redis: Redis, *, ok: int, failed: int, slow: int = 0) -> None:
    """Enqueue jobs on the email queue and run them with a real worker until the queue is empty."""
    queue = get_queue(QueueName.EMAIL, redis)
    for i in range(ok):
        queue.enqueue(f"{JOBS}.succeed", [str(uuid.uuid4())], job_id=f"ok_{i}")
    for i in range(failed):
        queue.enqueue(f"{JOBS}.fail", [str(uuid.uuid4())], job_id=f"bad_{i}")
    for i in range(slow):
        queue.enqueue(f"{JOBS}.linger", [str(uuid.uuid4())], 0.3, job_id=f"slow_{i}")
    SimpleWorker([queue], connection=redis, serializer=JSONSerializer).work(burst=True, logging_level="WARNING")


def email(stats: list[queue_stats.QueueStats]) -> queue_stats.QueueStats:
    return next(q for q in stats if q.name == "email")


def test_counts_ages_throughput_and_durations_of_real_jobs(redis: Redis) -> None:
    run_jobs(redis, ok=3, failed=2, slow=1)
    waiting = get_queue(QueueName.EMAIL, redis)
    waiting.enqueue(f"{JOBS}.succeed", ["a"], job_id="waiting_1")
    waiting.enqueue(f"{JOBS}.succeed", ["b"], job_id="waiting_2")
    time.sleep(0.05)

    stats = queue_stats.collect_queues(redis)
    q = email(stats)
    assert (q.queued, q.failed, q.started, q.scheduled, q.deferred) == (2, 2, 0, 0, 0)
    assert (q.finished_15m, q.failed_15m) == (4, 2)
    assert q.throughput_per_minute == {"1m": 6.0, "5m": 1.2, "15m": 0.4}
    assert q.oldest_waiting_seconds is not None
    assert 0.04 <= q.oldest_waiting_seconds < 30
    assert {s.name for s in stats} == {str(n) for n in QueueName}
    assert email(queue_stats.collect_queues(redis)).finished_15m == 4, "a second look must not count again"

    counts, total, n = queue_stats.durations(redis)["email"]
    assert n == 6
    assert sum(counts) == 6
    assert total >= 0.3, "the lingering job ran 0.3 s"
    slow_bucket = next(i for i, bound in enumerate(queue_stats.DURATION_BUCKETS) if bound >= 0.3)
    assert sum(counts[slow_bucket:]) >= 1

    # The jobs the timeline counted leave the registries (TTL), the counts stay in the window.
    redis.delete(f"rq:finished:{QueueName.EMAIL}")
    assert email(queue_stats.collect_queues(redis)).finished_15m == 4


def test_two_collectors_never_count_a_job_twice(redis: Redis, redis_url: str) -> None:
    run_jobs(redis, ok=5, failed=0)
    other = Redis.from_url(redis_url)
    try:
        queue_stats.collect_queues(redis)
        queue_stats.collect_queues(other)
        assert email(queue_stats.collect_queues(other)).finished_15m == 5
    finally:
        other.close()


def test_old_buckets_leave_the_window(redis: Redis) -> None:
    run_jobs(redis, ok=2, failed=0)
    now = time.time()
    assert email(queue_stats.collect_queues(redis, now=now)).finished_15m == 2
    later = queue_stats.collect_queues(redis, now=now + 16 * 60)
    assert email(later).finished_15m == 0
    assert email(later).throughput_per_minute["15m"] == 0
    assert redis.hlen(queue_stats.timeline_key("email", "finished")) == 0, "stale buckets are pruned"


def test_workers_show_queues_state_and_heartbeat(redis: Redis) -> None:
    worker = SimpleWorker(
        [get_queue(QueueName.SMS, redis)], connection=redis, serializer=JSONSerializer, name="w-sms-1"
    )
    worker.register_birth()
    try:
        worker.set_state("idle")
        [seen] = queue_stats.collect_workers(redis)
        assert (seen.name, seen.queues, seen.state, seen.current_job) == ("w-sms-1", ["sms"], "idle", None)
        assert seen.heartbeat_age_seconds is not None
        assert 0 <= seen.heartbeat_age_seconds < 30
    finally:
        worker.register_death()
    assert queue_stats.collect_workers(redis) == []


def test_unknown_messages_come_from_the_ledger(engine: Engine) -> None:
    seeded = seed_campaign(engine, statuses=["unknown", "sent", "unknown", "queued"])
    with system_session(engine) as session:
        total, rows = queue_stats.unknown_messages(session)
    assert total == 2
    assert {r.id for r in rows} == {str(seeded.message_ids[0]), str(seeded.message_ids[2])}
    assert all(r.campaign_id == str(seeded.campaign_id) and r.org_id == str(seeded.org_id) for r in rows)
    with system_session(engine) as session:
        assert queue_stats.unknown_messages(session, limit=1)[0] == 2


def test_events_round_trip_through_the_stream(redis: Redis) -> None:
    start = events.last_id(redis)
    assert start == "0-0"
    org, campaign, message = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert events.publish(
        redis, events.EventKind.SENT, org_id=org, campaign_id=campaign, message_id=message, channel="sms"
    )
    assert (
        events.publish_many(
            redis,
            [{"kind": "held", "org_id": org, "campaign_id": campaign, "reason": "quiet_hours", "kind_extra": None}],
        )
        == 1
    )
    cursor, found = events.read(redis, start)
    assert [e.kind for e in found] == ["sent", "held"]
    assert found[0].as_json()["message_id"] == str(message)
    assert found[0].fields["channel"] == "sms"
    assert found[1].fields["reason"] == "quiet_hours"
    assert (found[1].org_id, found[1].campaign_id) == (str(org), str(campaign))
    assert events.read(redis, cursor, block_ms=10) == (cursor, [])
    assert events.last_id(redis) == cursor


def test_render_prints_every_queue_and_the_unknown_count(redis: Redis) -> None:
    run_jobs(redis, ok=1, failed=1)
    snapshot = queue_stats.collect(redis)
    snapshot.unknown_count = 3
    text = queue_stats.render(snapshot)
    for name in QueueName:
        assert f"\n{name}" in text
    assert "unknown messages needing a decision: 3" in text
    assert "workers: none" in text


def test_sdr_status_prints_the_picture(redis: Redis, redis_url: str, database_url: str, engine: Engine) -> None:
    from click.testing import CliRunner

    from libs.cli import main

    run_jobs(redis, ok=2, failed=1)
    seed_campaign(engine, statuses=["unknown"])
    runner = CliRunner()
    result = runner.invoke(main, ["status", "--redis-url", redis_url, "--database-url", database_url])
    assert result.exit_code == 0, result.output
    email_row = next(line for line in result.output.splitlines() if line.startswith("email "))
    assert email_row.split()[:7] == ["email", "0", "0", "0", "0", "1", "2"]
    assert "unknown messages needing a decision: 1" in result.output

    broken = runner.invoke(main, ["status", "--redis-url", redis_url, "--database-url", database_url + "_missing"])
    # A ledger that cannot be read is a failed status, with a one-line reason and no traceback.
    assert broken.exit_code != 0
    assert "Traceback" not in broken.output
    assert broken.output.strip().splitlines()[-1].startswith("sdr: ")
