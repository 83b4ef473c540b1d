"""Query plans of the hot statements on a ledger of some size: their cost must not grow with the campaign."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from redis import Redis

from libs.db.session import system_session
from services.worker import jobs, ledger
from services.worker.personalize.prompt import PROMPT_VERSION
from services.worker.ticker import Ticker
from tests.services.worker.conftest import messages
from tests.services.worker.factories import create_world
from tests.support.smtp import SmtpServer


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, sub-plans and CTEs included."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def test_loading_a_batch_reads_only_its_own_messages_however_large_the_campaign(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, leads=2000, smtp=(smtp.host, smtp.port))
    with engine.connect() as conn:  # statistics taken at launch, before the ledger grew
        conn.execute(sa.text("ANALYZE"))
        conn.commit()
    Ticker(ctx.settings, ctx.engine, redis).tick()
    ids = [row.id for row in messages(engine, world)[:3]]
    with system_session(engine) as session:
        [[explained]] = session.execute(
            sa.text("EXPLAIN (ANALYZE, FORMAT JSON) " + ledger.LOAD.text),
            {"ids": ids, "prompt_version": PROMPT_VERSION},
        ).all()
    scans = [n for n in nodes(explained[0]["Plan"]) if n.get("Relation Name") == "messages"]
    assert scans
    # Reached by primary key: no scan of the campaign's 2,000 messages filtered down to the batch.
    read = sum(n["Actual Rows"] * n["Actual Loops"] + n.get("Rows Removed by Filter", 0) for n in scans)
    assert read <= len(ids), scans
