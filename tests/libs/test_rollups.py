"""Analytics rollups equal the computation from the raw events, whatever order events land in."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects.postgresql import insert as pg_insert

from bench.analytics import seed
from libs.cli import main
from libs.db.migrate import alembic_config, upgrade
from libs.db.models.analytics import COLUMNS, METRICS, rebuild
from libs.db.models.campaign import MessageEvent
from libs.db.session import Database, make_engine, system_session, tenant_session
from services.campaign.campaigns.analytics import campaign_analytics, campaign_analytics_from_events
from services.campaign.campaigns.schemas import Analytics
from tests.support.servers import create_database, drop_database

T0 = datetime.fromisoformat("2026-03-02T00:00:00+00:00")
LEADS = 6
SENDER = uuid.UUID("5e4de700-0000-4000-8000-000000000001")


@dataclass
class Org:
    id: uuid.UUID
    brand: uuid.UUID
    leads: list[uuid.UUID]


@dataclass
class Camp:
    id: uuid.UUID
    steps: dict[uuid.UUID, tuple[int, str]]
    enrollments: list[uuid.UUID]
    messages: list[uuid.UUID]


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def org(engine: sa.Engine) -> Org:
    o = Org(uuid.uuid4(), uuid.uuid4(), [uuid.uuid4() for _ in range(LEADS)])
    with system_session(engine) as s:
        c = s.connection()
        c.execute(sa.text("INSERT INTO organizations (id, name, created_at) VALUES (:o, 'A', now())"), {"o": o.id})
        c.execute(
            sa.text(
                "INSERT INTO brands (id, org_id, name, postal_address, opt_out_email, created_at) "
                "VALUES (:b, :o, 'A', '1 Main St', 'Reply STOP.', now())"
            ),
            {"b": o.brand, "o": o.id},
        )
        for i, lead in enumerate(o.leads):
            c.execute(
                sa.text(
                    "INSERT INTO leads (id, org_id, email, email_normalized, status, custom_fields, created_at, "
                    "updated_at) VALUES (:l, :o, :e, :e, 'active', '{}'::jsonb, now(), now())"
                ),
                {"l": lead, "o": o.id, "e": f"lead{i}@rollups.example"},
            )
    return o


def new_campaign(engine: sa.Engine, org: Org, enrolled_at: list[datetime]) -> Camp:
    """A campaign of an email step (variants A/B) and an SMS step; a message of each step per enrolled lead."""
    camp = Camp(uuid.uuid4(), {uuid.uuid4(): (1, "email"), uuid.uuid4(): (2, "sms")}, [], [])
    with tenant_session(engine, org.id) as s:
        c = s.connection()
        c.execute(
            sa.text(
                "INSERT INTO campaigns (id, org_id, brand_id, name, status, created_at) "
                "VALUES (:c, :o, :b, 'Rollups', 'active', now())"
            ),
            {"c": camp.id, "o": org.id, "b": org.brand},
        )
        for step, (position, channel) in camp.steps.items():
            c.execute(
                sa.text(
                    "INSERT INTO campaign_steps (id, org_id, campaign_id, position, channel, delay_minutes, variants, "
                    "created_at, updated_at) "
                    "VALUES (:s, :o, :c, :p, :ch, 0, '[]'::jsonb, now(), now())"
                ),
                {"s": step, "o": org.id, "c": camp.id, "p": position, "ch": channel},
            )
        for i, at in enumerate(enrolled_at):
            enrollment = uuid.uuid4()
            camp.enrollments.append(enrollment)
            c.execute(
                sa.text(
                    "INSERT INTO enrollments (id, org_id, campaign_id, lead_id, status, created_at, updated_at) "
                    "VALUES (:e, :o, :c, :l, 'active', :at, :at)"
                ),
                {"e": enrollment, "o": org.id, "c": camp.id, "l": org.leads[i], "at": at},
            )
            for step, (position, channel) in camp.steps.items():
                message = uuid.uuid4()
                camp.messages.append(message)
                c.execute(
                    sa.text(
                        "INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, "
                        "variant, status, created_at, updated_at) "
                        "VALUES (:m, :o, :e, :s, :c, :l, :ch, :v, 'sent', now(), now())"
                    ),
                    {
                        "m": message,
                        "o": org.id,
                        "e": enrollment,
                        "s": step,
                        "c": camp.id,
                        "l": org.leads[i],
                        "ch": channel,
                        "v": ("A" if i % 2 else "B") if position == 1 else None,
                    },
                )
    return camp


EVENTS: sa.Table = MessageEvent.__table__  # type: ignore[attr-defined]


def insert_events(conn: sa.Connection, org: Org, camp: Camp, events: list[tuple[uuid.UUID, tuple[Any, ...]]]) -> None:
    """Insert ``events`` (id, (message index or None, type, minutes after T0, names the sender)) in one
    statement; an id already there is skipped, as a redelivered event is."""
    rows = []
    for event_id, (message, type_, minutes, with_sender) in events:
        index = message % len(camp.messages) if message is not None else None
        rows.append(
            {
                "id": event_id,
                "org_id": org.id,
                "message_id": camp.messages[index] if index is not None else None,
                "lead_id": org.leads[index // 2 if index is not None else 0],
                "campaign_id": camp.id,
                "type": type_,
                "occurred_at": T0 + timedelta(minutes=minutes),
                "data": {"sender_id": str(SENDER)} if with_sender else {"sender_id": "not-a-uuid"},
            }
        )
    conn.execute(pg_insert(EVENTS).values(rows).on_conflict_do_nothing(index_elements=["id"]))


def insert_event(conn: sa.Connection, org: Org, camp: Camp, event_id: uuid.UUID, spec: tuple[Any, ...]) -> None:
    """Insert one event (see :func:`insert_events`)."""
    insert_events(conn, org, camp, [(event_id, spec)])


def analytics(url: str, org: Org, camp: Camp, since: datetime | None = None, until: datetime | None = None) -> Any:
    """(from the rollups, from the raw events) of the campaign, read on a tenant session."""

    async def both() -> tuple[Analytics, Analytics]:
        db = Database.from_url(url, pool_size=1)
        try:
            async with db.tenant(org.id) as session:
                rolled = await campaign_analytics(
                    session, org_id=org.id, campaign_id=camp.id, positions=camp.steps, since=since, until=until
                )
                raw = await campaign_analytics_from_events(
                    session, org_id=org.id, campaign_id=camp.id, positions=camp.steps
                )
            return rolled, raw
        finally:
            await db.dispose()

    return asyncio.run(both())


def counters(engine: sa.Engine, camp: Camp) -> dict[tuple[Any, ...], int]:
    """The campaign's counters by (step, variant, channel, sender, hour, metric), zeros left out."""
    with system_session(engine) as s:
        rows = s.connection().execute(
            sa.text("SELECT * FROM campaign_rollups WHERE campaign_id = :c"),
            {"c": camp.id},
        )
        return {
            (r.step_id, r.variant, r.channel, r.sender_id, r.hour, c): getattr(r, c)
            for r in rows
            for c in COLUMNS
            if getattr(r, c)
        }


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, tuple[Any, ...], int]]:
    """Events of a message and type at one to three times each (a message opened again, a status
    reported twice), shuffled so that later events often land first, with redeliveries and deletions."""
    facts = draw(
        st.lists(
            st.tuples(
                st.one_of(st.none(), st.integers(0, 2 * LEADS - 1)),
                st.sampled_from([*METRICS, "held"]),
                st.lists(st.integers(0, 6 * 60), min_size=1, max_size=3),
                st.booleans(),
            ),
            min_size=1,
            max_size=15,
        )
    )
    events = [(message, type_, minutes, sender) for message, type_, times, sender in facts for minutes in times]
    shuffled = draw(st.permutations(events))
    ops = st.sampled_from(["insert", "insert", "insert", "redeliver", "delete"])
    return [(draw(ops), event, draw(st.integers(0, 10_000))) for event in shuffled]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stream=streams(),
    enrolled=st.lists(st.integers(0, 6 * 60), min_size=1, max_size=LEADS),
    window=st.tuples(st.integers(0, 6), st.integers(1, 7)),
)
def test_rollups_equal_the_raw_computation_for_any_stream(
    engine: sa.Engine, database_url: str, org: Org, stream: list[Any], enrolled: list[int], window: tuple[int, int]
) -> None:
    """Random streams with duplicates (an event id delivered again), reordering and late events (a
    message's first open arriving after a later one), deletions and message-less events, written
    on tenant sessions in several transactions, single rows and multi-row statements: the rollups
    equal the raw computation, any window of whole hours equals the raw hours inside it, and a
    rebuild changes no counter."""
    camp = new_campaign(engine, org, [T0 + timedelta(minutes=m) for m in enrolled])
    landed: list[uuid.UUID] = []
    for start in range(0, len(stream), 7):
        with tenant_session(engine, org.id) as s:
            conn = s.connection()
            batch: list[tuple[uuid.UUID, tuple[Any, ...]]] = []  # consecutive inserts: one statement
            for op, spec, pick in stream[start : start + 7]:
                if op == "insert" or not landed:
                    landed.append(uuid.uuid4())
                    batch.append((landed[-1], spec))
                    continue
                if batch:
                    insert_events(conn, org, camp, batch)
                    batch = []
                if op == "redeliver":
                    insert_event(conn, org, camp, landed[pick % len(landed)], spec)
                else:
                    conn.execute(EVENTS.delete().where(EVENTS.c.id == landed[pick % len(landed)]))
            if batch:
                insert_events(conn, org, camp, batch)

    rolled, raw = analytics(database_url, org, camp)
    assert rolled.model_dump() == raw.model_dump()

    since, until = T0 + timedelta(hours=window[0]), T0 + timedelta(hours=max(window[0] + 1, window[1]))
    windowed, _ = analytics(database_url, org, camp, since, until)
    inside = [h for h in raw.hourly if since <= h.hour < until]
    for metric in ("enrolled", *METRICS):
        assert getattr(windowed.totals, metric) == sum(getattr(h, metric) for h in inside), metric
    assert [h.model_dump() for h in windowed.hourly] == [h.model_dump() for h in inside]

    incremental = counters(engine, camp)
    with system_session(engine) as s:
        rebuild(s.connection(), camp.id)
    assert counters(engine, camp) == incremental


def test_late_first_open_moves_the_count_to_its_own_hour(engine: sa.Engine, database_url: str, org: Org) -> None:
    camp = new_campaign(engine, org, [T0])
    with tenant_session(engine, org.id) as s:
        conn = s.connection()
        insert_event(conn, org, camp, uuid.uuid4(), (0, "opened", 3 * 60 + 5, False))
        insert_event(conn, org, camp, uuid.uuid4(), (0, "opened", 4 * 60 + 5, False))
    rolled, _ = analytics(database_url, org, camp)
    assert [(h.hour.hour, h.opened) for h in rolled.hourly if h.opened] == [(3, 1)]
    with tenant_session(engine, org.id) as s:
        insert_event(s.connection(), org, camp, uuid.uuid4(), (0, "opened", 60 + 5, False))  # late, earlier
    rolled, raw = analytics(database_url, org, camp)
    assert [(h.hour.hour, h.opened) for h in rolled.hourly if h.opened] == [(1, 1)]
    assert rolled.totals.opened == 1
    assert rolled == raw


def test_deleting_a_lead_or_a_campaign_takes_its_counts_back(engine: sa.Engine, database_url: str, org: Org) -> None:
    camp = new_campaign(engine, org, [T0, T0])
    with tenant_session(engine, org.id) as s:
        conn = s.connection()
        for message in range(4):
            insert_event(conn, org, camp, uuid.uuid4(), (message, "sent", 10, True))
        insert_event(conn, org, camp, uuid.uuid4(), (None, "unsubscribed", 20, False))
    rolled, _ = analytics(database_url, org, camp)
    assert (rolled.totals.enrolled, rolled.totals.sent, rolled.totals.unsubscribed) == (2, 4, 1)
    with system_session(engine) as s:
        s.connection().execute(sa.text("DELETE FROM leads WHERE id = :l"), {"l": org.leads[1]})
    rolled, raw = analytics(database_url, org, camp)
    assert (rolled.totals.enrolled, rolled.totals.sent, rolled.totals.unsubscribed) == (1, 2, 1)
    assert rolled == raw
    with system_session(engine) as s:
        s.connection().execute(sa.text("DELETE FROM campaigns WHERE id = :c"), {"c": camp.id})
        left = s.connection().execute(
            sa.text("SELECT (SELECT count(*) FROM campaign_rollups) + (SELECT count(*) FROM message_firsts)")
        )
        assert left.scalar_one() == 0


def test_counters_keep_to_their_organization(engine: sa.Engine, org: Org) -> None:
    camp = new_campaign(engine, org, [T0])
    with tenant_session(engine, org.id) as s:
        insert_event(s.connection(), org, camp, uuid.uuid4(), (0, "sent", 10, True))
    with tenant_session(engine, uuid.uuid4()) as s:
        assert s.connection().execute(sa.text("SELECT count(*) FROM campaign_rollups")).scalar_one() == 0
        assert s.connection().execute(sa.text("SELECT count(*) FROM message_firsts")).scalar_one() == 0
    assert counters(engine, camp)[(next(iter(camp.steps)), "B", "email", SENDER, T0, "sent")] == 1


def test_sdr_analytics_rebuild_recomputes_drifted_counters(
    engine: sa.Engine, database_url: str, redis_url: str, org: Org
) -> None:
    camp = new_campaign(engine, org, [T0, T0 + timedelta(hours=2)])
    other = new_campaign(engine, org, [T0])
    with tenant_session(engine, org.id) as s:
        insert_event(s.connection(), org, camp, uuid.uuid4(), (1, "delivered", 30, False))
    expected = counters(engine, camp)
    with system_session(engine) as s:
        s.connection().execute(sa.text("UPDATE campaign_rollups SET sent = sent + 41, enrolled = enrolled + 41"))
    runner = CliRunner()
    env = {"SDR_DATABASE_URL": database_url, "SDR_REDIS_URL": redis_url}
    done = runner.invoke(main, ["analytics", "rebuild", "--campaign", str(camp.id)], env=env, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert f"rebuilt {camp.id}" in done.output
    assert counters(engine, camp) == expected
    assert counters(engine, other)[(None, None, None, None, T0, "enrolled")] == 42  # not this campaign's run
    done = runner.invoke(main, ["analytics", "rebuild"], env=env, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert counters(engine, other) == {(None, None, None, None, T0, "enrolled"): 1}
    missing = runner.invoke(main, ["analytics", "rebuild", "--campaign", str(uuid.uuid4())], env=env)
    assert missing.exit_code == 1
    assert "no campaign" in missing.output


def test_concurrent_writers_of_one_message_count_it_once_in_the_earliest_hour(
    engine: sa.Engine, database_url: str, org: Org
) -> None:
    """A second transaction inserting an earlier open of the same message while the first has
    not committed waits for it, then moves the count: one open, in the earlier hour."""
    camp = new_campaign(engine, org, [T0])
    started = threading.Event()
    errors: list[BaseException] = []

    def late_writer() -> None:
        try:
            with tenant_session(engine, org.id) as s:
                started.set()
                insert_events(s.connection(), org, camp, [(uuid.uuid4(), (0, "opened", 65, False))])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with tenant_session(engine, org.id) as s:
        insert_events(s.connection(), org, camp, [(uuid.uuid4(), (0, "opened", 185, False))])
        thread = threading.Thread(target=late_writer)
        thread.start()
        started.wait(5)
        time.sleep(0.3)  # the other transaction is now waiting on this one's first
    thread.join(10)
    assert not errors, errors
    rolled, raw = analytics(database_url, org, camp)
    assert [(h.hour.hour, h.opened) for h in rolled.hourly if h.opened] == [(1, 1)]
    assert rolled == raw


@pytest.fixture
def fresh_url(pg_server_url: str) -> Iterator[str]:
    """An empty database the test migrates itself."""
    url = create_database(pg_server_url, prefix="tw_mig")
    yield url
    drop_database(pg_server_url, url)


def test_migration_backfills_the_rollups_from_existing_events_and_downgrades(fresh_url: str) -> None:
    from alembic import command

    upgrade(fresh_url, "0017")
    seeded = seed(fresh_url, 3_000)  # events and enrollments written before the rollups exist
    upgrade(fresh_url, "0018")

    async def both() -> tuple[Analytics, Analytics]:
        db = Database.from_url(fresh_url, pool_size=1)
        kw: dict[str, Any] = {"org_id": seeded.org, "campaign_id": seeded.campaign, "positions": seeded.positions}
        try:
            async with db.tenant(seeded.org) as session:
                return await campaign_analytics(session, **kw), await campaign_analytics_from_events(session, **kw)
        finally:
            await db.dispose()

    rolled, raw = asyncio.run(both())
    assert rolled.totals.sent > 0
    assert rolled.totals.enrolled > 0
    assert rolled == raw

    command.downgrade(alembic_config(fresh_url), "0017")
    engine = make_engine(fresh_url)
    try:
        with engine.connect() as conn:
            left = conn.execute(sa.text("SELECT to_regclass('campaign_rollups'), to_regclass('message_firsts')")).one()
            assert tuple(left) == (None, None)
            triggers = conn.execute(sa.text("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%rollup%'")).scalar()
            assert triggers == 0
    finally:
        engine.dispose()
