"""Benchmark enrolling many leads into a campaign through the campaign service's set-based statement.

Creates a scratch database, inserts N leads (a few suppressed, a few without an email, a few
already active in another campaign of the brand), then enrolls them all by filter through
``CampaignService.enroll`` on a real tenant session (row-level security on) and prints the
time and leads/s. Goal: 100,000 leads in under 10 s.

    uv run python bench/enroll.py                  # 100,000 leads
    uv run python bench/enroll.py --leads 20000    # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from libs.db.migrate import upgrade  # noqa: E402
from libs.db.session import Database  # noqa: E402
from libs.settings import normalize_database_url  # noqa: E402
from libs.suppression import hash_key  # noqa: E402
from services.campaign.campaigns.repository import Repositories  # noqa: E402
from services.campaign.campaigns.schemas import EnrollRequest, LeadFilter  # noqa: E402
from services.campaign.campaigns.service import CampaignService  # noqa: E402
from tests.support.servers import create_database, drop_database  # noqa: E402


def seed(url: str, leads: int) -> tuple[uuid.UUID, uuid.UUID]:
    """Create an organization, a brand, two campaigns with a step each, and ``leads`` leads."""
    org, brand, main, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    engine = sa.create_engine(normalize_database_url(url))
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO organizations (id, name, created_at) VALUES (:o, 'bench', now())"), {"o": org}
        )
        conn.execute(
            sa.text("INSERT INTO brands (id, org_id, name, created_at) VALUES (:b, :o, 'Bench', now())"),
            {"b": brand, "o": org},
        )
        for campaign in (main, other):
            conn.execute(
                sa.text(
                    "INSERT INTO campaigns (id, org_id, brand_id, name, status, created_at) "
                    "VALUES (:c, :o, :b, 'bench', 'active', now())"
                ),
                {"c": campaign, "o": org, "b": brand},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO campaign_steps (id, org_id, campaign_id, position, channel, delay_minutes, "
                    "subject_template, body_template, created_at) "
                    "VALUES (gen_random_uuid(), :o, :c, 1, 'email', 0, 's', 'b', now())"
                ),
                {"c": campaign, "o": org},
            )
        conn.execute(
            sa.text(
                "INSERT INTO leads (id, org_id, email, email_normalized, status, custom_fields, created_at, "
                "updated_at) "
                "SELECT gen_random_uuid(), :o, e, e, 'active', '{}'::jsonb, now(), now() "
                "FROM (SELECT CASE WHEN g % 100 = 0 THEN NULL ELSE 'lead' || g || '@d' || (g % 500) || '.example' END "
                "      AS e FROM generate_series(1, :n) g) s"
            ),
            {"o": org, "n": leads},
        )
        conn.execute(
            sa.text(
                "INSERT INTO suppressions (id, org_id, channel, kind, value, reason, created_at) "
                "VALUES (gen_random_uuid(), :o, 'email', 'domain', 'd7.example', 'manual', now())"
            ),
            {"o": org},
        )
        conn.execute(
            sa.text(
                "INSERT INTO enrollments (id, org_id, campaign_id, lead_id, status, created_at, updated_at) "
                "SELECT gen_random_uuid(), :o, :c, id, 'active', now(), now() FROM leads "
                "WHERE org_id = :o AND email_normalized LIKE '%@d3.example'"
            ),
            {"o": org, "c": other},
        )
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return org, main


async def enroll(url: str, org: uuid.UUID, campaign: uuid.UUID) -> tuple[float, int, dict[str, int]]:
    """Enroll every lead of the organization by filter; return seconds, enrolled and skipped."""
    db = Database.from_url(url)
    try:
        started = time.perf_counter()
        async with db.tenant(org) as session:
            service = CampaignService(Repositories.for_org(session, org, suppression_key=hash_key("bench")))
            result = await service.enroll(campaign, EnrollRequest(filter=LeadFilter()))
        return time.perf_counter() - started, result.enrolled, result.skipped
    finally:
        await db.dispose()


def main() -> None:
    """Run the benchmark and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument(
        "--server",
        default=os.environ.get("SDR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="A PostgreSQL server URL; a scratch database is created and dropped on it.",
    )
    args = parser.parse_args()
    server = normalize_database_url(args.server)
    url = create_database(server, prefix="tw_bench_enroll")
    try:
        upgrade(url)
        org, campaign = seed(url, args.leads)
        seconds, enrolled, skipped = asyncio.run(enroll(url, org, campaign))
        total = enrolled + sum(skipped.values())
        print(f"leads: {args.leads:,}  enrolled: {enrolled:,}  skipped: {skipped}")
        print(f"enroll: {seconds:.2f} s  ({total / seconds:,.0f} leads/s)  goal: 100,000 in < 10 s")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 shared cores)")
    finally:
        drop_database(server, url)


if __name__ == "__main__":
    main()
