"""Per-sender pacing on a controlled clock: the ramp, random gaps, caps per recipient provider from MX answers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
import sqlalchemy as sa
from redis import Redis

from libs.db.models.brand import ramp
from libs.db.session import system_session
from libs.deliverability import sending_domain
from libs.deliverability.dns_preflight import DnsConfig
from services.worker import jobs
from services.worker.ratelimit import Gap, Limit, RateLimiter, classify
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import create_world
from tests.support.dns import DnsServer, dns_server
from tests.support.smtp import SmtpServer
from tests.support.world import World


def set_sender(engine: sa.Engine, world: World, **values: object) -> None:
    assignments = ", ".join(f"{k} = :{k}" for k in values)
    with system_session(engine) as s:
        s.execute(
            sa.text(f"UPDATE senders SET {assignments} WHERE brand_id = :b AND kind = 'email'"),
            {**values, "b": world.brand_id},
        )


def next_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)


def test_the_ramp_starts_at_n_and_adds_k_a_day_up_to_the_maximum() -> None:
    start = datetime(2026, 12, 1, 15, tzinfo=UTC)
    days = [ramp(10, 2, 3, start, start + timedelta(days=d)) for d in range(5)]
    assert days == [(1, 2), (2, 5), (3, 8), (4, 10), (5, 10)]
    assert ramp(10, None, None, start, start + timedelta(days=2)) == (3, 10)


def test_the_worker_sends_the_ramps_cap_of_the_day_and_holds_the_rest_until_tomorrow(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, leads=20, smtp=(smtp.host, smtp.port))
    now = ctx.now()
    set_sender(engine, world, daily_limit=10, ramp_start=2, ramp_step=3, verified_at=now - timedelta(days=2))
    drain(ctx, redis)
    rows = messages(engine, world)
    assert sum(r.status == "sent" for r in rows) == 8  # day 3: 2 + 2 * 3
    held = [r for r in rows if r.status == "held"]
    assert len(held) == 12
    assert {r.hold_reason for r in held} == {"cap_sender_day"}
    assert {r.next_attempt_at for r in held} == {next_midnight(now) + timedelta(seconds=1)}
    ctx.settings.clock_offset_seconds += 86400  # day 4: the maximum, 10
    drain(ctx, redis)
    assert sum(r.status == "sent" for r in messages(engine, world)) == 18
    assert len(smtp.messages) == 18


def test_random_gaps_respect_their_bounds_and_are_not_a_fixed_interval(redis: Redis) -> None:
    limiter = RateLimiter(redis)
    gap = Gap("sender:test:gap", 60, 300)
    day = Limit("sender:test:day", 1000, 86400)
    clock = datetime(2026, 12, 3, 12, tzinfo=UTC)
    sends: list[datetime] = []
    while len(sends) < 12:
        verdict = limiter.take([day], clock, gap)
        if verdict.allowed:
            sends.append(clock)
            clock += timedelta(seconds=1)
            continue
        assert verdict.limit == gap
        assert verdict.retry_at is not None
        assert verdict.retry_at > clock
        clock = verdict.retry_at
    intervals = [(b - a).total_seconds() for a, b in pairwise(sends)]
    assert all(60 <= i <= 301 for i in intervals)
    assert len({round(i) for i in intervals}) > 3
    assert redis.get(day.bucket(clock)[0]) == b"12"  # a refused take took no slot of the day


def test_the_worker_holds_a_senders_next_mail_for_its_random_gap(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, leads=4, smtp=(smtp.host, smtp.port))
    set_sender(engine, world, min_gap_seconds=120, max_gap_seconds=600)
    now = ctx.now()
    drain(ctx, redis)
    rows = messages(engine, world)
    assert sum(r.status == "sent" for r in rows) == 1
    held = [r for r in rows if r.status == "held"]
    assert {r.hold_reason for r in held} == {"cap_sender_gap"}
    for r in held:
        assert now + timedelta(seconds=119) <= r.next_attempt_at <= now + timedelta(seconds=660)


@pytest.fixture
def mx() -> Iterator[DnsServer]:
    zone = {
        "example0.test": [("MX", "10 aspmx.l.google.com."), ("MX", "20 alt1.aspmx.l.google.com.")],
        "example1.test": [("MX", "0 example1-test.mail.protection.outlook.com.")],
        "example2.test": [("MX", "10 mx.example2.test.")],
    }
    previous, readiness = sending_domain.current(), sending_domain.for_readiness()
    with dns_server(zone) as server:
        sending_domain.configure(DnsConfig(nameservers=(f"127.0.0.1:{server.port}",), timeout=1), in_readiness=False)
        yield server
    sending_domain.configure(previous, in_readiness=readiness is not None)


def test_caps_per_recipient_provider_come_from_the_mx_asked_once(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer, mx: DnsServer
) -> None:
    world = create_world(engine, leads=30, smtp=(smtp.host, smtp.port))  # 10 leads at each example{0,1,2}.test
    set_sender(engine, world, provider_daily_caps='{"google": 2, "microsoft": 1}')
    drain(ctx, redis)
    sent = Counter(m.rcpt_tos[0].rpartition("@")[2] for m in smtp.messages)
    assert sent == {"example0.test": 2, "example1.test": 1, "example2.test": 10}
    held = Counter(r.hold_reason for r in messages(engine, world) if r.status == "held")
    assert held == {"cap_sender_google_day": 8, "cap_sender_microsoft_day": 9}
    assert {name: mx.queries[name] for name in ("example0.test", "example1.test", "example2.test")} == {
        "example0.test": 1,
        "example1.test": 1,
        "example2.test": 1,
    }


def test_mail_exchangers_name_their_provider() -> None:
    assert classify(["gmail-smtp-in.l.google.com."]) == "google"
    assert classify(["contoso-com.mail.protection.outlook.com"]) == "microsoft"
    assert classify(["mta5.am0.yahoodns.net."]) == "yahoo"
    assert classify(["mx.notgoogle.com", "mail.example.net"]) == "other"
    assert classify([]) == "other"
