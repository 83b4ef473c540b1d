"""Analytics from the rollups: exact counts per campaign, step, variant, channel and hour."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.analytics import Seeded, seed
from libs.db.session import Database, make_engine, tenant_session
from services.campaign.campaigns.analytics import analytics_params, campaign_analytics, events_sql
from tests.services.campaign.campaigns.conftest import World, seed_many_leads

H1 = "2026-03-02T10:00:00+00:00"
H2 = "2026-03-02T11:00:00+00:00"


def seed_campaign_history(world: World, org_id: uuid.UUID, campaign_id: str, steps: list[str]) -> None:
    """Ten enrolled leads; step 1 (email, variants A for leads 1-6, B after) to all, step 2 (sms) to leads 1-4."""
    s1, s2 = steps
    sql = """
    WITH l AS (
        SELECT id, row_number() OVER (ORDER BY email) AS i FROM leads
        WHERE org_id = :org AND email LIKE '%@bulk.example' ORDER BY email LIMIT 10
    ), e AS (
        INSERT INTO enrollments (id, org_id, campaign_id, lead_id, status, next_step_position, created_at, updated_at)
        SELECT gen_random_uuid(), :org, :c, id, 'active', 2, now(), now() FROM l RETURNING id, lead_id
    ), m1 AS (
        INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, variant, status,
                              created_at, updated_at)
        SELECT gen_random_uuid(), :org, e.id, :s1, :c, e.lead_id, 'email', CASE WHEN l.i <= 6 THEN 'A' ELSE 'B' END,
               'sent', now(), now()
        FROM e JOIN l ON l.id = e.lead_id RETURNING id, lead_id
    ), m2 AS (
        INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, status,
                              created_at, updated_at)
        SELECT gen_random_uuid(), :org, e.id, :s2, :c, e.lead_id, 'sms', 'sent', now(), now()
        FROM e JOIN l ON l.id = e.lead_id WHERE l.i <= 4 RETURNING id, lead_id
    ), msgs AS (
        SELECT m1.id, m1.lead_id, 1 AS step, l.i FROM m1 JOIN l ON l.id = m1.lead_id
        UNION ALL
        SELECT m2.id, m2.lead_id, 2, l.i FROM m2 JOIN l ON l.id = m2.lead_id
    ), ev(type, step, lo, hi, at) AS (
        VALUES ('sent', 1, 1, 10, CAST(:h1 AS timestamptz) + interval '5 min'),
               ('sent', 2, 1, 4, CAST(:h1 AS timestamptz) + interval '6 min'),
               ('delivered', 1, 1, 10, CAST(:h1 AS timestamptz) + interval '7 min'),
               ('delivered', 2, 1, 2, CAST(:h1 AS timestamptz) + interval '8 min'),
               ('opened', 1, 1, 5, CAST(:h2 AS timestamptz) + interval '1 min'),
               ('opened', 1, 1, 5, CAST(:h2 AS timestamptz) + interval '70 min'),
               ('clicked', 1, 1, 3, CAST(:h2 AS timestamptz) + interval '2 min'),
               ('replied', 1, 1, 1, CAST(:h2 AS timestamptz) + interval '3 min'),
               ('unsubscribed', 1, 2, 2, CAST(:h2 AS timestamptz) + interval '4 min'),
               ('failed', 2, 3, 3, CAST(:h2 AS timestamptz) + interval '5 min'),
               ('bounced', 2, 4, 4, CAST(:h2 AS timestamptz) + interval '6 min')
    )
    INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at, data)
    SELECT gen_random_uuid(), :org, msgs.id, msgs.lead_id, :c, ev.type, ev.at, '{}'::jsonb
    FROM msgs JOIN ev ON ev.step = msgs.step AND msgs.i BETWEEN ev.lo AND ev.hi
    UNION ALL
    SELECT gen_random_uuid(), :org, NULL, (SELECT id FROM l WHERE i = 9), :c, 'unsubscribed',
           CAST(:h2 AS timestamptz) + interval '9 min', '{"via": "reply"}'::jsonb
    """
    with world.db.begin() as conn:
        conn.execute(sa.text(sql), {"org": org_id, "c": campaign_id, "s1": s1, "s2": s2, "h1": H1, "h2": H2})


def counts(row: dict[str, Any]) -> tuple[int, ...]:
    keys = ("sent", "delivered", "opened", "clicked", "replied", "bounced", "unsubscribed", "failed")
    return tuple(row[k] for k in keys)


def _campaign(world: World, actor_name: str = "a") -> tuple[dict[str, Any], list[str]]:
    actor = getattr(world, actor_name)
    brand = world.brand_a if actor_name == "a" else world.brand_b
    c = actor.create_campaign(brand)
    s1 = actor.add_step(c["id"], variants=[{"key": "A", "weight": 1}, {"key": "B", "weight": 1}])
    s2 = actor.add_step(c["id"], channel="sms", sms_template="Hi", delay=1)
    return c, [s1["id"], s2["id"]]


def test_analytics_counts_exactly(world: World) -> None:
    seed_many_leads(world.db, world.a.org_id, 10)
    seed_many_leads(world.db, world.b.org_id, 10)
    c, steps = _campaign(world)
    seed_campaign_history(world, world.a.org_id, c["id"], steps)
    noise, noise_steps = _campaign(world)  # another campaign of A: never counted here
    seed_campaign_history(world, world.a.org_id, noise["id"], noise_steps)

    r = world.a.get(f"/api/campaigns/{c['id']}/analytics")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totals"]["enrolled"] == 10
    assert counts(body["totals"]) == (14, 12, 5, 3, 1, 1, 2, 1)
    by_step = {s["position"]: s for s in body["by_step"]}
    assert counts(by_step[1]) == (10, 10, 5, 3, 1, 0, 1, 0)
    assert by_step[1]["channel"] == "email"
    assert counts(by_step[2]) == (4, 2, 0, 0, 0, 1, 0, 1)
    variants = {(v["step_id"], v["variant"]): counts(v) for v in body["by_variant"]}
    assert variants == {
        (steps[0], "A"): (6, 6, 5, 3, 1, 0, 1, 0),
        (steps[0], "B"): (4, 4, 0, 0, 0, 0, 0, 0),
        (steps[1], None): (4, 2, 0, 0, 0, 1, 0, 1),
    }
    channels = {ch["channel"]: counts(ch) for ch in body["by_channel"]}
    assert channels == {"email": (10, 10, 5, 3, 1, 0, 1, 0), "sms": (4, 2, 0, 0, 0, 1, 0, 1)}
    hourly = {h["hour"]: h for h in body["hourly"]}
    assert counts(hourly["2026-03-02T10:00:00Z"]) == (14, 12, 0, 0, 0, 0, 0, 0)
    assert counts(hourly["2026-03-02T11:00:00Z"]) == (0, 0, 5, 3, 1, 1, 2, 1)
    assert sum(h["enrolled"] for h in body["hourly"]) == 10

    window = world.a.get(f"/api/campaigns/{c['id']}/analytics", params={"until": H2}).json()
    assert counts(window["totals"]) == (14, 12, 0, 0, 0, 0, 0, 0)
    bad = world.a.get(f"/api/campaigns/{c['id']}/analytics", params={"since": H2, "until": H1})
    assert bad.status_code == 422
    hour = world.a.get(
        f"/api/campaigns/{c['id']}/analytics", params={"since": H1, "until": "2026-03-02T13:00:00+02:00"}
    )
    assert counts(hour.json()["totals"]) == (14, 12, 0, 0, 0, 0, 0, 0)  # 10:00Z to 10:00Z+1h: any offset on an hour
    for params in ({"since": "2026-03-02T10:30:00Z"}, {"until": "2026-03-02T11:00:00+05:30"}):
        unaligned = world.a.get(f"/api/campaigns/{c['id']}/analytics", params=params)
        assert unaligned.status_code == 422, unaligned.text
        assert unaligned.json()["errors"][0]["field"] == next(iter(params)), unaligned.text


def test_analytics_of_an_empty_campaign_are_zero(world: World) -> None:
    c, _ = _campaign(world)
    body = world.a.get(f"/api/campaigns/{c['id']}/analytics").json()
    assert body["totals"] == dict.fromkeys(body["totals"], 0)
    assert body["by_step"] == body["by_variant"] == body["by_channel"] == body["hourly"] == []


def _plan(database_url: str, seeded: Seeded, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the events query on a tenant session, as the service runs it."""
    engine = make_engine(database_url)
    try:
        with tenant_session(engine, seeded.org) as session:
            sql = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + events_sql(since, until)
            params = analytics_params(seeded.org, seeded.campaign, since, until)
            return dict(session.connection().execute(sa.text(sql), params).scalar_one()[0]["Plan"])
    finally:
        engine.dispose()


def _event_scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if node.get("Relation Name") == "message_events" else []
    return found + [scan for child in node.get("Plans", []) for scan in _event_scans(child)]


def test_analytics_read_only_the_windows_index_entries(database_url: str) -> None:
    """On a realistic analyzed data set (the benchmark's, 20,000 events and as many of other
    campaigns and organizations interleaved), a window's events are read from the covering
    index alone, and the buffers a window touches scale with the window, not with the table.
    (For the whole campaign, half this small table, a sequential scan may be the cheaper plan
    under some servers' cost settings: only its buffers are compared.)"""
    seeded = seed(database_url, 20_000)
    windows = {
        "campaign": (None, None),
        "day": (seeded.day, seeded.day + timedelta(days=1)),
        "hour": (seeded.hour, seeded.hour + timedelta(hours=1)),
    }
    buffers = {}
    for name, (since, until) in windows.items():
        scans = _event_scans(_plan(database_url, seeded, since, until))
        assert len(scans) == 1, (name, scans)
        scan = scans[0]
        if since is not None:
            assert scan["Node Type"] == "Index Only Scan", (name, scan)
            assert scan["Index Name"] == "ix_message_events_campaign_id_type_occurred_at", name
            assert scan["Heap Fetches"] == 0, name
            assert "occurred_at >=" in scan["Index Cond"], scan
            assert "occurred_at <" in scan["Index Cond"], scan
        buffers[name] = scan["Shared Hit Blocks"] + scan["Shared Read Blocks"]
    assert buffers["hour"] <= buffers["day"] < buffers["campaign"] / 4, buffers


def test_analytics_read_only_the_rollups(database_url: str) -> None:
    """The request's transaction scans campaign_rollups and none of the raw tables (per-transaction stats)."""
    seeded = seed(database_url, 2_000)

    async def scans() -> dict[str, int]:
        db = Database.from_url(database_url, pool_size=1)
        try:
            async with db.tenant(seeded.org) as session:
                body = await campaign_analytics(
                    session, org_id=seeded.org, campaign_id=seeded.campaign, positions=seeded.positions
                )
                assert body.totals.sent > 0
                assert body.totals.enrolled > 0
                rows = await (await session.connection()).execute(
                    sa.text(
                        "SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS n "
                        "FROM pg_stat_xact_user_tables "
                        "WHERE relname IN ('campaign_rollups', 'message_events', 'messages', 'enrollments')"
                    )
                )
                return {r.relname: int(r.n) for r in rows}
        finally:
            await db.dispose()

    counted = asyncio.run(scans())
    assert counted["campaign_rollups"] > 0, counted
    assert counted["message_events"] == counted["messages"] == counted["enrollments"] == 0, counted
