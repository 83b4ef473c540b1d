"""After a fault: dead workers noticed in seconds, claims that run out, re-registration after a flush, holds."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from redis import Redis
from rq import SimpleWorker, Worker
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from libs.db.session import system_session
from libs.queue import get_queue
from libs.settings import Environment
from services.worker import jobs
from services.worker.main import reregister
from services.worker.settings import WorkerSettings
from services.worker.ticker import Ticker, alive_key, marker_key
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import create_world
from tests.support.smtp import SmtpServer


def _started_by(redis: Redis, job_id: str, worker: str) -> None:
    """Make ``job_id`` look as RQ leaves a job a worker is running: started, named, in the started registry."""
    redis.hset(f"rq:job:{job_id}", mapping={"status": JobStatus.STARTED.value, "worker_name": worker})
    redis.zadd(StartedJobRegistry("email", connection=redis).key, {f"{job_id}:exec1": time.time() + 600})


def test_a_dead_workers_queued_messages_are_enqueued_again_within_seconds_and_a_live_ones_never(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    ctx.settings.worker_alive_ttl = 1.0
    ctx.settings.repair_after_seconds = 3600  # the age-based repair stays out of it
    world = create_world(engine, leads=3, smtp=(smtp.host, smtp.port))
    ticker = Ticker(ctx.settings, ctx.engine, redis)
    ticker.tick()
    rows = messages(engine, world)
    marker = redis.get(marker_key(rows[0].id))
    assert isinstance(marker, bytes)
    job_id = marker.decode()
    get_queue("email", redis).remove(job_id)  # the worker took it off the queue
    redis.set(alive_key("alive-one"), b"1")
    _started_by(redis, job_id, "alive-one")
    for _ in range(3):  # a live worker's job is never taken from it
        assert ticker.rescue_dead_workers() == 0
        time.sleep(0.3)
    redis.delete(alive_key("alive-one"))  # killed: its liveness key ran out
    assert ticker.rescue_dead_workers() == 0  # missing, but not yet for half a TTL (a flush looks the same)
    time.sleep(0.6)
    assert ticker.rescue_dead_workers() == 3
    assert StartedJobRegistry("email", connection=redis).get_job_ids(cleanup=False) == []
    assert job_id in FailedJobRegistry("email", connection=redis).get_job_ids(cleanup=False)
    assert {redis.get(marker_key(r.id)) for r in rows} != {job_id.encode()}  # a new job carries them
    assert ticker.rescue_dead_workers() == 0  # once
    SimpleWorker([get_queue("email", redis)], connection=redis, serializer=JSONSerializer).work(burst=True)
    assert [r.status for r in messages(engine, world)] == ["sent"] * 3
    assert len(smtp.messages) == 3


def test_a_claim_whose_lease_runs_out_is_unknown_at_once_and_holds_the_enrollment(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, channels=("email", "email"), smtp=(smtp.host, smtp.port))
    ticker = Ticker(ctx.settings, ctx.engine, redis)
    ticker.tick()
    [row] = messages(engine, world)
    with system_session(engine) as s:  # what a worker killed mid-send leaves: a claim nobody renews
        s.execute(
            sa.text("UPDATE messages SET status = 'sending', attempt = 1, next_attempt_at = :lease WHERE id = :id"),
            {"id": row.id, "lease": ctx.now() - timedelta(seconds=1)},
        )
    assert ticker.tick().lost == 1
    ctx.settings.clock_offset_seconds += 3600
    drain(ctx, redis)
    [after] = messages(engine, world)  # step 2 never created: the lead waits for an operator
    assert (after.status, after.error_code, after.attempt) == ("unknown", "claim_lost", 1)
    assert smtp.messages == []  # never (re)sent
    with system_session(engine) as s:
        state = s.execute(
            sa.text("SELECT status, next_step_position, next_due_at FROM enrollments WHERE id = :e"),
            {"e": world.enrollment_ids[0]},
        ).one()
    assert tuple(state) == ("active", 1, None)


def test_a_live_workers_slow_send_keeps_its_claim_past_the_lease(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    ctx.settings.worker_alive_ttl = 0.6  # renewed every 0.2 s
    world = create_world(engine, smtp=(smtp.host, smtp.port))
    ticker = Ticker(ctx.settings, ctx.engine, redis)
    ticker.tick()
    [row] = messages(engine, world)
    seen: list[Any] = []

    def slow(_: Any) -> None:
        time.sleep(2.0)  # three leases long
        seen.append((ticker.expire_claims(), messages(engine, world)[0].status))

    ctx.before_send = slow
    try:
        assert jobs.run_batch(ctx, [row.id]) == {row.id: "sent"}
    finally:
        ctx.before_send = None
    assert seen == [(0, "sending")]  # the renewed lease kept the ticker off it
    assert len(smtp.messages) == 1


def test_a_worker_whose_registration_a_flush_took_registers_again(redis: Redis) -> None:
    worker = SimpleWorker([get_queue("email", redis)], connection=redis, serializer=JSONSerializer)
    assert reregister(redis, worker) is False  # not born yet: register_birth is RQ's
    worker.register_birth()  # type: ignore[no-untyped-call]
    assert reregister(redis, worker) is False  # registered: nothing to do
    redis.flushdb()
    assert Worker.all(connection=redis) == []
    worker.set_state("busy")  # RQ's bookkeeping writes part of the hash back, never the worker sets
    assert reregister(redis, worker) is True
    [listed] = Worker.all(connection=redis)
    assert listed.name == worker.name
    assert listed.queue_names() == ["email"]
    assert Worker.all(queue=get_queue("email", redis)) != []
    worker.register_death()  # type: ignore[no-untyped-call]
    assert reregister(redis, worker) is False  # a stopping worker is never brought back
    assert Worker.all(connection=redis) == []


def test_the_clock_offset_is_refused_outside_tests() -> None:
    assert WorkerSettings(env=Environment.TEST, clock_offset_seconds=60).clock_offset_seconds == 60
    assert WorkerSettings(env=Environment.DEVELOPMENT).clock_offset_seconds == 0
    with pytest.raises(ValidationError, match=r"SDR_CLOCK_OFFSET_SECONDS .* only with SDR_ENV=test"):
        WorkerSettings(env=Environment.DEVELOPMENT, clock_offset_seconds=60)


def test_with_an_unknown_hold_the_lead_moves_on_after_it_and_the_message_stays_unknown(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    ctx.settings.unknown_hold_hours = 2
    world = create_world(engine, channels=("email", "email"), smtp=(smtp.host, smtp.port))
    smtp.drop_after_data()
    drain(ctx, redis)
    ticker = Ticker(ctx.settings, ctx.engine, redis)
    assert [(r.position, r.status) for r in messages(engine, world)] == [(1, "unknown")]
    ctx.settings.clock_offset_seconds += 3600  # an hour: still held
    assert ticker.release_unknown_holds() == 0
    ctx.settings.clock_offset_seconds += 3700  # past two hours
    assert ticker.release_unknown_holds() == 1
    assert ticker.release_unknown_holds() == 0  # once
    drain(ctx, redis)
    assert [(r.position, r.status) for r in messages(engine, world)] == [(1, "unknown"), (2, "sent")]
    assert len(smtp.messages) == 2  # step 1 (dropped after DATA, never resent) and step 2


def test_after_a_redis_flush_the_next_pass_enqueues_every_waiting_message_again(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    ctx.settings.repair_after_seconds = 3600  # the age-based repair would wait an hour
    world = create_world(engine, leads=3, smtp=(smtp.host, smtp.port))
    ticker = Ticker(ctx.settings, ctx.engine, redis)
    ticker.tick()
    assert ticker.repair() == 0  # their job waits in Redis
    redis.flushdb()  # the job, its markers and the sentinel are gone
    assert ticker.repair() == 3
    assert ticker.repair() == 0  # enqueued again once: their new job waits
    SimpleWorker([get_queue("email", redis)], connection=redis, serializer=JSONSerializer).work(burst=True)
    assert [r.status for r in messages(engine, world)] == ["sent"] * 3
    assert len(smtp.messages) == 3
