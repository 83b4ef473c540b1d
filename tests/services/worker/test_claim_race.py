"""The claim against a second execution: a message that moved on after a batch loaded it is never handed off again."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from redis import Redis

from services.worker import jobs
from services.worker.settings import WorkerSettings
from services.worker.ticker import Ticker
from tests.services.worker.conftest import messages
from tests.services.worker.factories import create_world
from tests.support.smtp import SmtpServer

LEDGER_FIELDS = ("status", "attempt", "provider_message_id", "sent_at", "error_code", "body", "next_attempt_at")


def _ledger(row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, name) for name in LEDGER_FIELDS)


@pytest.mark.parametrize(
    ("outcome", "delivered"),
    [("sent", 1), ("unknown", 1), ("failed", 0)],
)
def test_a_message_another_execution_moved_on_between_load_and_claim_is_not_handed_off(
    ctx: jobs.Context,
    wsettings: WorkerSettings,
    redis: Redis,
    engine: sa.Engine,
    smtp: SmtpServer,
    outcome: str,
    delivered: int,
) -> None:
    # Two steps, so the enrollment stays active whatever the other execution recorded: only the
    # claim's own status condition stands between the stale batch and a second hand-off.
    world = create_world(engine, channels=("email", "email"), smtp=(smtp.host, smtp.port))
    Ticker(ctx.settings, ctx.engine, redis).tick()
    [queued] = messages(engine, world)
    assert queued.status == "queued"
    if outcome == "unknown":
        smtp.drop_after_data()  # delivered, but the other execution cannot know it
    elif outcome == "failed":
        smtp.reply_at("DATA", "554 5.7.1 Message refused")
    other = jobs.Context.create(wsettings)
    seen: list[tuple[Any, ...]] = []

    def another_execution_finishes_it(row: Any) -> None:
        # This batch has loaded and gated the message; a second execution (an RQ retry, the
        # repair pass) now runs the whole pipeline for it before this batch's claim.
        assert other.before_claim is None
        assert jobs.run_batch(other, [row.id]) == {row.id: outcome}
        [moved] = messages(engine, world)
        seen.append(_ledger(moved))

    ctx.before_claim = another_execution_finishes_it
    try:
        assert jobs.run_batch(ctx, [queued.id]) == {queued.id: "already_claimed"}
    finally:
        ctx.before_claim = None
        other.close()
    assert len(seen) == 1
    assert len(smtp.messages) == delivered  # the other execution's hand-off, and no second one
    [after] = messages(engine, world)
    assert after.status == outcome
    assert _ledger(after) == seen[0]  # the stale batch overwrote nothing
    assert after.attempt == 1
