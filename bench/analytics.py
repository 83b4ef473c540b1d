"""Benchmark campaign analytics from the rollups at 10,000 and 1,000,000 events, beside the raw SQL.

For each size, creates a scratch database and loads, in set-based SQL, one organization with a
brand and a campaign of three steps (email with A/B variants, SMS, voicemail), its leads,
enrollments and messages, and ``--events`` message events for that campaign over about 30
days (sent, delivered, opened — some emails several times —, clicked, replied, bounced,
unsubscribed, failed, and opt-outs without a message), plus as many events again for another
campaign of the organization and a campaign of another organization, inserted in time order
as the system writes them (the rollup triggers of migration 0018 run on every row, so the load
time includes their cost). Then it runs ``VACUUM ANALYZE`` and times, on a tenant session
(app role, organization set: row-level security on), for the whole campaign, one day and one
hour: ``campaign_analytics`` (reads only ``campaign_rollups``), the raw computation it replaced
(``events_sql`` + ``enrolled_sql`` over the events) and ``count(*)`` of the same events (the
cheapest read of them). It checks the rollups equal the raw computation for the whole campaign
and prints the plan of the rollups query.

The rollups read one row per (hour, step, variant, channel, sender) with any activity, whatever
the number of events, so latency stays flat from 10,000 to 1,000,000 events. One run (load
average 3.2-3.8 on 2 shared cores; compare within a run only), rollups against the raw
computation they replaced:

    window           rollups @ 10,000   raw @ 10,000   rollups @ 1,000,000   raw @ 1,000,000
    whole campaign             8.0 ms        18.6 ms                7.6 ms         1,661 ms
    one day                    2.2 ms         5.6 ms                2.3 ms           260 ms
    one hour                   1.6 ms         2.3 ms                1.7 ms           7.6 ms

At 1,000,000 events the bare count of the campaign's events took 174 ms (whole campaign) and
6.8 ms (one day): the rollups answer faster than merely counting the events. Loading the
2,000,000 events with the triggers on, plus leads, enrollments and messages, took 241 s.

    uv run python bench/analytics.py                          # 10,000 and 1,000,000 events
    uv run python bench/analytics.py --events 10000 --events 100000   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from libs.db.migrate import upgrade  # noqa: E402
from libs.db.session import Database  # noqa: E402
from libs.settings import normalize_database_url  # noqa: E402
from services.campaign.campaigns.analytics import (  # noqa: E402
    analytics_params,
    campaign_analytics,
    campaign_analytics_from_events,
    count_sql,
    enrolled_sql,
    events_sql,
    rollups_sql,
)
from tests.support.servers import create_database, drop_database  # noqa: E402

START = datetime.fromisoformat("2026-03-01T00:00:00+00:00")
EVENTS_PER_LEAD = 5.0
"""About 5.4 events per enrolled lead with the rates below; 5.0 leaves a margin to cut at ``--events``."""

STEPS = ((1, "email"), (2, "sms"), (3, "voicemail"))

MESSAGES_SQL = """
INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, variant, status,
                      sent_at, created_at, updated_at)
SELECT md5(:ck || ':m:' || s.pos || ':' || g)::uuid, :o, md5(:ck || ':e:' || g)::uuid, s.id, :c,
       md5(:ok || ':l:' || g)::uuid, s.channel,
       CASE WHEN s.pos = 1 THEN CASE WHEN g % 2 = 0 THEN 'A' ELSE 'B' END END, 'sent', t.at, t.at, t.at
FROM generate_series(1, :n) g
CROSS JOIN (VALUES (1, CAST(:s1 AS uuid), 'email'), (2, CAST(:s2 AS uuid), 'sms'),
                   (3, CAST(:s3 AS uuid), 'voicemail')) s(pos, id, channel)
CROSS JOIN LATERAL (
    SELECT CAST(:t0 AS timestamptz) + (interval '25 days') * g / :n + interval '2 days' * (s.pos - 1)
           + interval '1 second' * (abs(hashtext(g || ':' || s.pos)) % 3600) AS at
) t
WHERE s.pos = 1 OR (s.pos = 2 AND g % 5 <> 0) OR (s.pos = 3 AND g % 2 = 0)
"""
"""Every lead gets the email (variant A or B), four in five the SMS, one in two the voicemail."""

STAGE_SQL = """
INSERT INTO bench_events (org_id, message_id, lead_id, campaign_id, type, occurred_at)
WITH m AS (
    SELECT m.id, m.lead_id, m.channel, m.sent_at,
           abs(hashtext(m.id::text)) % 1000 AS r1, abs(hashtext(m.id::text || 'b')) % 1000 AS r2,
           abs(hashtext(m.id::text || 'c')) % 1000 AS r3,
           CASE m.channel WHEN 'email' THEN 10 WHEN 'sms' THEN 40 ELSE 80 END AS failed_below,
           CASE m.channel WHEN 'email' THEN 40 WHEN 'sms' THEN 120 ELSE 230 END AS delivered_from
    FROM messages m WHERE m.campaign_id = :c
)
SELECT :o, m.id, m.lead_id, :c, ev.type, m.sent_at + ev.after
FROM m CROSS JOIN LATERAL (VALUES
    ('failed', interval '0', m.r1 < m.failed_below),
    ('sent', interval '0', m.r1 >= m.failed_below),
    ('delivered', interval '1 minute', m.r1 >= m.delivered_from),
    ('bounced', interval '2 minutes', m.channel = 'email' AND m.r1 >= 10 AND m.r1 < 40),
    ('clicked', interval '2 hours' + interval '1 minute' * m.r3, m.channel = 'email' AND m.r1 >= 40 AND m.r2 < 100),
    ('replied', interval '5 hours' + interval '1 minute' * m.r2,
     m.r1 >= m.delivered_from AND m.channel <> 'voicemail' AND m.r3 < CASE m.channel WHEN 'email' THEN 30 ELSE 50 END),
    ('unsubscribed', interval '3 hours',
     m.r1 >= m.delivered_from AND m.channel <> 'voicemail' AND m.r3 >= 980)
) ev(type, after, keep)
WHERE ev.keep
UNION ALL
SELECT :o, m.id, m.lead_id, :c, 'opened',
       m.sent_at + interval '1 hour' * (1 + 7 * k) + interval '1 minute' * m.r3
FROM m CROSS JOIN LATERAL generate_series(0, m.r3 % 3) k
WHERE m.channel = 'email' AND m.r1 >= 40 AND m.r2 < 450
UNION ALL
SELECT :o, NULL, md5(:ok || ':l:' || g)::uuid, :c, 'unsubscribed',
       CAST(:t0 AS timestamptz) + (interval '25 days') * g / :n + interval '3 days'
FROM generate_series(1, :n) g WHERE g % 1000 = 7
"""
"""Outcomes per message from hashes of its id: failed or sent, delivered, bounced (email), opened
1-3 times (45% of delivered email), clicked, replied, unsubscribed; plus opt-outs by reply that
name no message (one lead in a thousand)."""


@dataclass
class Seeded:
    """What the benchmark needs to call the analytics: ids, step positions and the windows."""

    org: uuid.UUID
    campaign: uuid.UUID
    positions: dict[uuid.UUID, tuple[int, str]]
    day: datetime
    hour: datetime
    rows: dict[str, int]


def seed_campaign(conn: sa.Connection, org: uuid.UUID, brand: uuid.UUID, name: str, leads: int) -> Seeded:
    """Create a campaign of three steps, enroll the organization's first ``leads`` leads and stage its events."""
    campaign = uuid.uuid4()
    steps = {pos: uuid.uuid4() for pos, _ in STEPS}
    conn.execute(
        sa.text(
            "INSERT INTO campaigns (id, org_id, brand_id, name, status, created_at, launched_at) "
            "VALUES (:c, :o, :b, :name, 'active', :t0, :t0)"
        ),
        {"c": campaign, "o": org, "b": brand, "name": name, "t0": START},
    )
    for pos, channel in STEPS:
        conn.execute(
            sa.text(
                "INSERT INTO campaign_steps (id, org_id, campaign_id, position, channel, delay_minutes, "
                "subject_template, body_template, sms_template, script_template, variants, created_at) "
                "VALUES (:s, :o, :c, :pos, :channel, :delay, 'Hi', 'Hello', 'Hi', 'Hello', CAST(:variants AS jsonb), "
                ":t0)"
            ),
            {
                "s": steps[pos],
                "o": org,
                "c": campaign,
                "pos": pos,
                "channel": channel,
                "delay": (pos - 1) * 2 * 1440,
                "variants": json.dumps([{"key": "A", "weight": 1}, {"key": "B", "weight": 1}] if pos == 1 else []),
                "t0": START,
            },
        )
    params = {"o": org, "c": campaign, "ok": str(org), "ck": str(campaign), "n": leads, "t0": START}
    conn.execute(
        sa.text(
            "INSERT INTO enrollments (id, org_id, campaign_id, lead_id, status, next_step_position, created_at, "
            "updated_at) "
            "SELECT md5(:ck || ':e:' || g)::uuid, :o, :c, md5(:ok || ':l:' || g)::uuid, 'completed', 4, t.at, t.at "
            "FROM generate_series(1, :n) g, "
            "LATERAL (SELECT CAST(:t0 AS timestamptz) + (interval '25 days') * g / :n AS at) t"
        ),
        params,
    )
    conn.execute(sa.text(MESSAGES_SQL), {**params, "s1": steps[1], "s2": steps[2], "s3": steps[3]})
    conn.execute(sa.text(STAGE_SQL), params)
    positions = {steps[pos]: (pos, channel) for pos, channel in STEPS}
    return Seeded(org, campaign, positions, START, START, {})


def seed(url: str, events: int) -> Seeded:
    """Load the campaign's ``events`` events and as many again for the noise campaigns; return the ids."""
    org, other_org = uuid.uuid4(), uuid.uuid4()
    leads = int(events / EVENTS_PER_LEAD) + 1
    engine = sa.create_engine(normalize_database_url(url), poolclass=sa.NullPool)
    started = time.perf_counter()
    with engine.begin() as conn:
        brands = {}
        for o, name in ((org, "Bench"), (other_org, "Other")):
            brands[o] = uuid.uuid4()
            conn.execute(
                sa.text("INSERT INTO organizations (id, name, created_at) VALUES (:o, :n, :t)"),
                {
                    "o": o,
                    "n": name,
                    "t": START,
                },
            )
            conn.execute(
                sa.text(
                    "INSERT INTO brands (id, org_id, name, postal_address, opt_out_email, created_at) "
                    "VALUES (:b, :o, :n, '1 Main St, Springfield', 'Reply STOP.', :t)"
                ),
                {"b": brands[o], "o": o, "n": name, "t": START},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO leads (id, org_id, email, email_normalized, phone, status, custom_fields, "
                    "consent_sms_at, consent_voice_at, created_at, updated_at) "
                    "SELECT md5(:ok || ':l:' || g)::uuid, :o, 'lead' || g || '@d' || (g % 500) || '.example', "
                    "'lead' || g || '@d' || (g % 500) || '.example', '+1415' || lpad(g::text, 7, '0'), 'active', "
                    "'{}'::jsonb, :t, :t, :t, :t FROM generate_series(1, :n) g"
                ),
                {"o": o, "ok": str(o), "n": leads, "t": START},
            )
        conn.exec_driver_sql(
            "CREATE TEMP TABLE bench_events (org_id uuid, message_id uuid, lead_id uuid, campaign_id uuid,"
            " type text, occurred_at timestamptz) ON COMMIT DROP"
        )
        main = seed_campaign(conn, org, brands[org], "Spring outreach", leads)
        noise = [
            seed_campaign(conn, org, brands[org], "Autumn outreach", leads // 2),
            seed_campaign(conn, other_org, brands[other_org], "Other organization", leads // 2),
        ]
        limits = [(main.campaign, events), *((n.campaign, events // 2) for n in noise)]
        parts = " UNION ALL ".join(
            f"(SELECT * FROM bench_events WHERE campaign_id = :c{i} ORDER BY occurred_at LIMIT :n{i})"
            for i in range(len(limits))
        )
        binds: dict[str, Any] = {}
        for i, (campaign, limit) in enumerate(limits):
            binds |= {f"c{i}": campaign, f"n{i}": limit}
        conn.execute(
            sa.text(
                "INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at, data) "
                f"SELECT gen_random_uuid(), org_id, message_id, lead_id, campaign_id, type, occurred_at, '{{}}'::jsonb "
                f"FROM ({parts}) e ORDER BY occurred_at"
            ),
            binds,
        )
        median = conn.execute(
            sa.text(
                "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY occurred_at) FROM message_events "
                "WHERE campaign_id = :c"
            ),
            {"c": main.campaign},
        ).scalar_one()
    loaded = time.perf_counter() - started
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
        for table in ("leads", "enrollments", "messages", "message_events"):
            main.rows[table] = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    main.rows["load_seconds"] = round(loaded)
    main.day = median.replace(hour=0, minute=0, second=0, microsecond=0)
    main.hour = median.replace(minute=0, second=0, microsecond=0)
    return main


async def median_ms(run: Callable[[], Awaitable[Any]], runs: int) -> float:
    """Call ``run`` once to warm up, then ``runs`` times; return the median in milliseconds."""
    await run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def summarize(plan: dict[str, Any], depth: int = 0) -> list[str]:
    """One line per plan node: its type, index, rows and buffers (shared hit + read)."""
    node = plan
    label = node["Node Type"]
    if "Index Name" in node:
        label += f" using {node['Index Name']}"
    elif "Relation Name" in node:
        label += f" on {node['Relation Name']}"
    buffers = node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)
    temp = node.get("Temp Read Blocks", 0) + node.get("Temp Written Blocks", 0)
    line = f"{'  ' * depth}{label}  rows={node.get('Actual Rows', 0):,}  buffers={buffers:,}"
    if temp:
        line += f"  temp={temp:,}"
    if "Heap Fetches" in node:
        line += f"  heap_fetches={node['Heap Fetches']:,}"
    line += f"  {node.get('Actual Total Time', 0):.0f} ms"
    lines = [line]
    for child in node.get("Plans", []):
        lines += summarize(child, depth + 1)
    return lines


@dataclass
class Figures:
    """One window's figures: events, medians in milliseconds and the rollups query's plan."""

    name: str
    events: int
    rollups_ms: float
    raw_ms: float
    count_ms: float
    plan: list[str]


async def measure(url: str, s: Seeded, runs: int, raw_runs: int) -> tuple[list[Figures], bool]:
    """Time the rollups, the raw computation and the bare count per window; check rollups == raw."""
    db = Database.from_url(url, pool_size=1)
    windows = [
        ("whole campaign", None, None),
        ("one day", s.day, s.day + timedelta(days=1)),
        ("one hour", s.hour, s.hour + timedelta(hours=1)),
    ]
    out = []
    try:
        for name, since, until in windows:
            params = analytics_params(s.org, s.campaign, since, until)

            async def rollups(since: datetime | None = since, until: datetime | None = until) -> Any:
                async with db.tenant(s.org) as session:
                    return await campaign_analytics(
                        session, org_id=s.org, campaign_id=s.campaign, positions=s.positions, since=since, until=until
                    )

            async def raw(
                params: dict[str, Any] = params, since: datetime | None = since, until: datetime | None = until
            ) -> Any:
                async with db.tenant(s.org) as session:
                    conn = await session.connection()
                    await conn.execute(sa.text(events_sql(since, until)), params)
                    return (await conn.execute(sa.text(enrolled_sql(since, until)), params)).all()

            async def count(
                params: dict[str, Any] = params, since: datetime | None = since, until: datetime | None = until
            ) -> int:
                async with db.tenant(s.org) as session:
                    conn = await session.connection()
                    return int((await conn.execute(sa.text(count_sql(since, until)), params)).scalar_one())

            rollups_ms = await median_ms(rollups, runs)
            raw_ms = await median_ms(raw, raw_runs)
            count_ms = await median_ms(count, runs)
            async with db.tenant(s.org) as session:
                conn = await session.connection()
                explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
                plan = (await conn.execute(sa.text(explain + rollups_sql(since, until)), params)).scalar_one()
            out.append(Figures(name, await count(), rollups_ms, raw_ms, count_ms, summarize(plan[0]["Plan"])))
        async with db.tenant(s.org) as session:
            kw: dict[str, Any] = {"org_id": s.org, "campaign_id": s.campaign, "positions": s.positions}
            equal = await campaign_analytics(session, **kw) == await campaign_analytics_from_events(session, **kw)
    finally:
        await db.dispose()
    return out, equal


def run_size(server: str, events: int, runs: int, raw_runs: int, keep: bool) -> list[Figures]:
    """Load ``events`` events into a scratch database, print and return its figures."""
    url = create_database(server, prefix="tw_bench_analytics")
    try:
        upgrade(url)
        s = seed(url, events)
        print(f"\n=== {events:,} events")
        print(f"loaded in {s.rows.pop('load_seconds')} s: " + ", ".join(f"{k} {v:,}" for k, v in s.rows.items()))
        print(f"windows: day {s.day:%Y-%m-%d}, hour {s.hour:%Y-%m-%d %H:00} UTC (around the median event)")
        figures, equal = asyncio.run(measure(url, s, runs, raw_runs))
        print(f"rollups equal the raw computation (whole campaign): {equal}")
        for f in figures:
            print(
                f"\n{f.name}: {f.events:,} events  rollups {f.rollups_ms:,.1f} ms  raw {f.raw_ms:,.1f} ms "
                f"({f.raw_ms / f.rollups_ms:,.0f}x the rollups)  bare count {f.count_ms:,.1f} ms"
            )
            print("\n".join(f"    {line}" for line in f.plan))
        if keep:
            print(f"kept: {url}")
        return figures
    finally:
        if not keep:
            drop_database(server, url)


def main() -> None:
    """Run the benchmark at each size and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, action="append", help="events of the measured campaign (repeatable; 10,000 and 1,000,000)"
    )
    parser.add_argument("--runs", type=int, default=15, help="timed runs per case (median reported)")
    parser.add_argument("--raw-runs", type=int, default=3, help="timed runs of the raw computation")
    parser.add_argument(
        "--server",
        "--server-url",
        default=os.environ.get("SDR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="A PostgreSQL server URL; a scratch database is created and dropped on it.",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases (their URLs are printed)")
    args = parser.parse_args()
    server = normalize_database_url(args.server)
    sizes = args.events or [10_000, 1_000_000]
    results = {n: run_size(server, n, args.runs, args.raw_runs, args.keep) for n in sizes}
    print("\nwindow           " + "".join(f"{f'rollups @ {n:,}':>22}{f'raw @ {n:,}':>20}" for n in sizes))
    for i, f in enumerate(results[sizes[0]]):
        cells = "".join(f"{results[n][i].rollups_ms:>19.1f} ms{results[n][i].raw_ms:>17.1f} ms" for n in sizes)
        print(f"{f.name:<17}{cells}")
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 shared cores)")


if __name__ == "__main__":
    main()
