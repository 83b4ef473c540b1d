"""Resolving ``unknown`` messages (libs.ledger) with the real worker, ticker and loopback SMTP; ``sdr resolve``."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from redis import Redis

from libs import ledger
from libs.cli import main
from libs.db.base import utcnow
from libs.db.models.auth import User
from libs.db.models.campaign import Message
from libs.db.models.inbound import WebhookEndpoint
from libs.db.session import make_engine, system_session
from libs.settings import Environment
from services.worker import jobs
from services.worker.jobs import prepare, record
from services.worker.settings import WorkerSettings
from tests.services.worker.conftest import drain, messages, noon_in_new_york_offset
from tests.services.worker.factories import create_world
from tests.support.smtp import SmtpServer
from tests.support.world import World

OPERATOR = ledger.Operator(uuid.uuid4(), "ops@tidewater.test", via="cli")


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    e = make_engine(database_url)
    yield e
    e.dispose()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def ctx(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[jobs.Context]:
    settings = WorkerSettings(
        env=Environment.TEST,
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path,
        job_timeout=30,
        smtp_timeout=2,
        twilio_timeout=2,
        openai_timeout=1,
        openai_max_retries=0,
        repair_after_seconds=0,
        retry_base_seconds=0,
        worker_alive_ttl=3,
        domain_pacing_per_minute=100_000,
        email_hourly_cap=100_000,
        clock_offset_seconds=noon_in_new_york_offset(),
    )
    context = jobs.Context.create(settings)
    jobs.install(context)
    yield context
    context.close()
    jobs.install(None)


def one(engine: sa.Engine, sql: str, **params: Any) -> Any:
    with system_session(engine) as s:
        return s.execute(sa.text(sql), params).one()


def enrollment(engine: sa.Engine, enrollment_id: uuid.UUID) -> Any:
    return one(
        engine,
        "SELECT status, next_step_position, next_due_at, completed_at FROM enrollments WHERE id = :id",
        id=enrollment_id,
    )


def events(engine: sa.Engine, message_id: uuid.UUID) -> list[Any]:
    with system_session(engine) as s:
        return list(
            s.execute(
                sa.text(
                    "SELECT type, occurred_at, data FROM message_events WHERE message_id = :id ORDER BY occurred_at"
                ),
                {"id": message_id},
            )
        )


def resolve(engine: sa.Engine, ids: list[uuid.UUID], outcome: ledger.Outcome, **kw: Any) -> ledger.Batch:
    with system_session(engine) as s:
        return ledger.resolve_sync(s, ids, outcome, OPERATOR, **kw)


def unknown_by_the_worker(ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer, **world: Any) -> World:
    """A campaign whose first email's connection drops after DATA: the worker leaves it unknown."""
    created = create_world(engine, smtp=(smtp.host, smtp.port), **world)
    smtp.drop_after_data()
    drain(ctx, redis)
    first = messages(engine, created)[0]
    assert (first.status, first.error_code) == ("unknown", "smtp_lost_after_data")
    return created


def waiting_unknown(engine: sa.Engine, world: World) -> uuid.UUID:
    """An unknown first message whose enrollment still waits on that step (the ticker's claim cleared its due time)."""
    message_id = uuid.uuid4()
    with system_session(engine) as s:
        s.execute(sa.text("UPDATE enrollments SET next_due_at = NULL WHERE id = :e"), {"e": world.enrollment_ids[0]})
        s.add(
            Message(
                id=message_id,
                org_id=world.org_id,
                enrollment_id=world.enrollment_ids[0],
                step_id=world.step_ids[0],
                campaign_id=world.campaign_id,
                lead_id=world.lead_ids[0],
                channel="email",
                status="unknown",
                attempt=1,
                error_code="smtp_lost_after_data",
            )
        )
    return message_id


def add_message(engine: sa.Engine, world: World, lead: int, step: int, status: str) -> uuid.UUID:
    """A ledger row of lead ``lead`` (its enrollment) at step ``step`` (0-based indexes into the world)."""
    message = Message(
        org_id=world.org_id,
        enrollment_id=world.enrollment_ids[lead],
        step_id=world.step_ids[step],
        campaign_id=world.campaign_id,
        lead_id=world.lead_ids[lead],
        channel="email",
        status=status,
        attempt=1,
    )
    with system_session(engine) as s:
        s.add(message)
    return message.id


# --------------------------------------------------------------------------- delivered


def test_delivered_marks_it_sent_and_the_enrollment_moves_on_as_the_worker_schedules_it(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, channels=("email", "email"), smtp=(smtp.host, smtp.port), delay_minutes=90)
    message_id = waiting_unknown(engine, world)
    before = utcnow()
    batch = resolve(engine, [message_id], ledger.Outcome.DELIVERED, note="  in the provider's log  ")
    [result] = batch.results
    assert (result.resolved, result.status, result.enrollment) == (True, "sent", "advanced")
    row = one(engine, "SELECT status, sent_at, error_code, next_attempt_at FROM messages WHERE id = :id", id=message_id)
    assert (row.status, row.error_code, row.next_attempt_at) == ("sent", None, None)
    assert row.sent_at >= before
    # Exactly the worker's schedule: the same function, given the same facts.
    facts = one(
        engine,
        "SELECT ns.id AS next_step_id, ns.channel AS next_channel, ns.delay_minutes AS next_delay_minutes, "
        "ns.delay_unit AS next_delay_unit, ns.business_days AS next_business_days, "
        "COALESCE(ns.send_window, c.send_window) AS next_send_window, "
        "l.timezone AS lead_timezone, c.timezone AS campaign_timezone FROM campaigns c "
        "JOIN campaign_steps ns ON ns.campaign_id = c.id AND ns.position = 2 JOIN leads l ON l.id = :lead "
        "WHERE c.id = :c",
        c=world.campaign_id,
        lead=world.lead_ids[0],
    )
    # the worker schedules with this very function, after a send (record) and after a skip (prepare)
    assert vars(record)["next_step"] is vars(prepare)["next_step"] is ledger.next_step
    assert ledger.next_step(facts, batch.decided_at) == ("advance", batch.decided_at + timedelta(minutes=90))
    state = enrollment(engine, world.enrollment_ids[0])
    assert (state.status, state.next_step_position) == ("active", 2)
    assert state.next_due_at == batch.decided_at + timedelta(minutes=90)
    [event] = events(engine, message_id)
    assert event.type == "sent"
    assert event.occurred_at == batch.decided_at
    assert event.data["code"] == "smtp_lost_after_data"
    assert event.data["resolution"] == {
        "outcome": "delivered",
        "operator_id": str(OPERATOR.user_id),
        "operator_email": OPERATOR.email,
        "via": "cli",
        "note": "in the provider's log",
        "decided_at": batch.decided_at.isoformat(),
    }
    assert batch.live == [
        {
            "kind": "sent",
            "org_id": world.org_id,
            "campaign_id": world.campaign_id,
            "message_id": message_id,
            "channel": "email",
            "reason": "operator_delivered",
        }
    ]
    # Once the 90 minutes have passed on the worker's clock, the next step is due: it goes out.
    ctx.settings.clock_offset_seconds = max(ctx.settings.clock_offset_seconds, 0) + 90 * 60
    drain(ctx, redis)
    rows = messages(engine, world)
    assert [(r.position, r.status) for r in rows] == [(1, "sent"), (2, "sent")]
    assert len(smtp.messages) == 1  # only step 2: step 1 was never handed to this server
    assert enrollment(engine, world.enrollment_ids[0]).status == "completed"


def test_delivered_on_the_last_step_completes_the_enrollment(engine: sa.Engine) -> None:
    world = create_world(engine)
    message_id = waiting_unknown(engine, world)
    [result] = resolve(engine, [message_id], ledger.Outcome.DELIVERED).results
    assert result.enrollment == "completed"
    state = enrollment(engine, world.enrollment_ids[0])
    assert (state.status, state.next_step_position, state.next_due_at) == ("completed", 2, None)
    assert state.completed_at is not None


def test_an_unknown_send_holds_the_enrollment_until_delivered_moves_it_on(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    """Step 2 never goes while step 1 is unknown, however often the ticker passes; the decision moves it on."""
    world = unknown_by_the_worker(ctx, redis, engine, smtp, channels=("email", "email"))
    ctx.settings.clock_offset_seconds += 3600  # an hour later: step 2 would long be due
    drain(ctx, redis)
    assert [(r.position, r.status) for r in messages(engine, world)] == [(1, "unknown")]
    held = enrollment(engine, world.enrollment_ids[0])
    assert (held.status, held.next_step_position, held.next_due_at) == ("active", 1, None)
    assert len(smtp.messages) == 1
    message_id = messages(engine, world)[0].id
    batch = resolve(engine, [message_id], ledger.Outcome.DELIVERED, now=ctx.now())
    [result] = batch.results
    assert (result.resolved, result.status, result.enrollment) == (True, "sent", "advanced")
    drain(ctx, redis)
    assert [(r.position, r.status) for r in messages(engine, world)] == [(1, "sent"), (2, "sent")]
    assert len(smtp.messages) == 2
    assert enrollment(engine, world.enrollment_ids[0]).status == "completed"


def test_delivered_after_the_enrollment_moved_on_leaves_the_enrollment_alone(engine: sa.Engine) -> None:
    """An enrollment already past the step (moved on before unknown sends held it) is not moved again."""
    world = create_world(engine)
    message_id = waiting_unknown(engine, world)
    with system_session(engine) as s:
        s.execute(
            sa.text(
                "UPDATE enrollments SET status = 'completed', next_step_position = 2, completed_at = now() "
                "WHERE id = :e"
            ),
            {"e": world.enrollment_ids[0]},
        )
    before = enrollment(engine, world.enrollment_ids[0])
    [result] = resolve(engine, [message_id], ledger.Outcome.DELIVERED).results
    assert (result.resolved, result.status, result.enrollment) == (True, "sent", "unchanged")
    assert enrollment(engine, world.enrollment_ids[0]) == before


# --------------------------------------------------------------------------- failed


def test_failed_marks_it_failed_and_moves_on_as_after_a_failed_send(engine: sa.Engine) -> None:
    world = create_world(engine, channels=("email", "email"), delay_minutes=30)
    message_id = waiting_unknown(engine, world)
    batch = resolve(engine, [message_id], ledger.Outcome.FAILED, note="bounced in the provider's log")
    [result] = batch.results
    assert (result.resolved, result.status, result.enrollment) == (True, "failed", "advanced")
    row = one(engine, "SELECT status, sent_at, error_code FROM messages WHERE id = :id", id=message_id)
    assert (row.status, row.sent_at, row.error_code) == ("failed", None, "smtp_lost_after_data")
    state = enrollment(engine, world.enrollment_ids[0])
    assert state.next_step_position == 2
    assert state.next_due_at == batch.decided_at + timedelta(minutes=30)
    [event] = events(engine, message_id)
    assert event.type == "failed"
    assert event.data["resolution"]["outcome"] == "failed"
    assert event.data["resolution"]["note"] == "bounced in the provider's log"
    assert batch.live[0]["kind"] == "failed"


# --------------------------------------------------------------------------- resend


def test_resend_goes_out_once_through_the_worker_and_never_twice(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = unknown_by_the_worker(ctx, redis, engine, smtp)
    assert len(smtp.messages) == 1  # the server had it, but the worker could not know
    message_id = messages(engine, world)[0].id
    assert enrollment(engine, world.enrollment_ids[0]).status == "active"  # held on the unknown step
    [result] = resolve(engine, [message_id], ledger.Outcome.RESEND, note="not in the provider's log").results
    assert (result.resolved, result.status, result.enrollment) == (True, "queued", "unchanged")
    state = enrollment(engine, world.enrollment_ids[0])
    assert (state.status, state.next_step_position, state.completed_at) == ("active", 1, None)
    [event] = events(engine, message_id)
    assert (event.type, event.data["reason"], event.data["resolution"]["outcome"]) == (
        "held",
        "operator_resend",
        "resend",
    )

    drain(ctx, redis)
    drain(ctx, redis)  # and once more: nothing is left to send
    assert len(smtp.messages) == 2
    assert smtp.messages[1].rcpt_tos == smtp.messages[0].rcpt_tos
    [row] = messages(engine, world)
    assert (row.status, row.attempt, row.error_code) == ("sent", 2, None)
    assert enrollment(engine, world.enrollment_ids[0]).status == "completed"  # moved on by the worker again
    assert [e.type for e in events(engine, message_id)] == ["held", "sent"]
    # A second decision about it is refused: it is not unknown any more.
    [again] = resolve(engine, [message_id], ledger.Outcome.RESEND).results
    assert (again.resolved, again.reason, again.status) == (False, ledger.Refusal.NOT_UNKNOWN, "sent")


def test_a_resend_that_ends_unknown_again_is_not_resent_again(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = unknown_by_the_worker(ctx, redis, engine, smtp)
    message_id = messages(engine, world)[0].id
    assert resolve(engine, [message_id], ledger.Outcome.RESEND).resolved == 1
    smtp.drop_after_data()
    drain(ctx, redis)
    drain(ctx, redis)
    assert len(smtp.messages) == 2
    [row] = messages(engine, world)
    assert (row.status, row.attempt) == ("unknown", 2)
    [again] = resolve(engine, [message_id], ledger.Outcome.RESEND).results
    assert (again.resolved, again.reason) == (False, ledger.Refusal.ALREADY_RESENT)
    drain(ctx, redis)
    assert len(smtp.messages) == 2
    [failed] = resolve(engine, [message_id], ledger.Outcome.FAILED).results
    assert (failed.resolved, failed.status) == (True, "failed")


def test_a_resend_whose_sending_fails_ends_failed(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = unknown_by_the_worker(ctx, redis, engine, smtp)
    message_id = messages(engine, world)[0].id
    assert resolve(engine, [message_id], ledger.Outcome.RESEND).resolved == 1
    smtp.reply_at("RCPT", "554 5.7.1 Rejected")
    drain(ctx, redis)
    drain(ctx, redis)
    [row] = messages(engine, world)
    assert (row.status, row.error_code) == ("failed", "smtp_554")
    assert len(smtp.messages) == 1
    assert enrollment(engine, world.enrollment_ids[0]).status == "completed"


def test_resend_is_refused_when_it_could_only_be_skipped(engine: sa.Engine) -> None:
    world = create_world(engine, leads=3, channels=("email", "email"))
    ids = [add_message(engine, world, lead, 0, "unknown") for lead in range(3)]
    add_message(engine, world, 1, 1, "sent")  # the second lead went through both steps since
    with system_session(engine) as s:
        s.execute(sa.text("UPDATE enrollments SET status = 'stopped' WHERE id = :e"), {"e": world.enrollment_ids[0]})
        s.execute(
            sa.text("UPDATE enrollments SET status = 'completed', next_step_position = 3 WHERE id = :e"),
            {"e": world.enrollment_ids[1]},
        )
        s.execute(sa.text("UPDATE campaigns SET status = 'archived' WHERE id = :c"), {"c": world.campaign_id})
    archived = resolve(engine, ids, ledger.Outcome.RESEND).results
    assert [r.reason for r in archived] == [
        ledger.Refusal.ENROLLMENT_STOPPED,
        ledger.Refusal.CAMPAIGN_FINISHED,
        ledger.Refusal.CAMPAIGN_FINISHED,
    ]
    assert archived[1].detail == "The campaign is archived; a resend would be skipped. Mark it failed."
    with system_session(engine) as s:
        s.execute(sa.text("UPDATE campaigns SET status = 'active' WHERE id = :c"), {"c": world.campaign_id})
    results = resolve(engine, ids, ledger.Outcome.RESEND).results
    assert [(r.resolved, r.reason) for r in results] == [
        (False, ledger.Refusal.ENROLLMENT_STOPPED),
        (False, ledger.Refusal.SEQUENCE_FINISHED),
        (True, None),
    ]
    assert "Mark it failed" in str(results[0].detail)
    with system_session(engine) as s:
        statuses = dict(s.execute(sa.text("SELECT id, status FROM messages WHERE id = ANY(:ids)"), {"ids": ids}).all())
    assert [statuses[i] for i in ids] == ["unknown", "unknown", "queued"]
    with system_session(engine) as s:
        s.execute(sa.text("UPDATE messages SET status = 'unknown' WHERE id = :id"), {"id": ids[2]})
    [twice] = resolve(engine, [ids[2]], ledger.Outcome.RESEND).results
    assert twice.reason is ledger.Refusal.ALREADY_RESENT


# --------------------------------------------------------------------------- batches, refusals, races


def test_a_batch_gets_one_result_per_message_in_order(engine: sa.Engine) -> None:
    world = create_world(engine, leads=2)
    unknown = waiting_unknown(engine, world)
    sent = add_message(engine, world, 1, 0, "sent")
    missing = uuid.uuid4()
    batch = resolve(engine, [missing, unknown, sent, unknown], ledger.Outcome.FAILED)
    assert [(r.message_id, r.resolved, r.reason, r.status) for r in batch.results] == [
        (missing, False, ledger.Refusal.NOT_FOUND, None),
        (unknown, True, None, "failed"),
        (sent, False, ledger.Refusal.NOT_UNKNOWN, "sent"),
    ]
    assert (batch.resolved, batch.refused) == (1, 2)
    with pytest.raises(ValueError, match="at most 500"):
        resolve(engine, [uuid.uuid4() for _ in range(ledger.MAX_BATCH + 1)], ledger.Outcome.FAILED)
    with pytest.raises(ValueError, match="at most 1000"):
        resolve(engine, [unknown], ledger.Outcome.FAILED, note="x" * 1001)


def test_two_operators_resolving_one_message_at_once_resolve_it_once(engine: sa.Engine) -> None:
    world = create_world(engine)
    message_id = waiting_unknown(engine, world)
    second: list[ledger.Batch] = []
    with system_session(engine) as first_session:
        first = ledger.resolve_sync(first_session, [message_id], ledger.Outcome.DELIVERED, OPERATOR)
        # The second decision reads the row as unknown and then waits on the first one's row lock.
        thread = threading.Thread(target=lambda: second.append(resolve(engine, [message_id], ledger.Outcome.RESEND)))
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), "the second decision must wait for the first to commit"
    thread.join(10)
    assert first.results[0].resolved
    [lost] = second[0].results
    assert (lost.resolved, lost.reason, lost.status) == (False, ledger.Refusal.NOT_UNKNOWN, "sent")
    assert [e.type for e in events(engine, message_id)] == ["sent"]
    assert one(engine, "SELECT status FROM messages WHERE id = :id", id=message_id).status == "sent"


def test_announce_enqueues_the_customer_webhook_and_the_live_event(engine: sa.Engine, redis: Redis) -> None:
    world = create_world(engine)
    message_id = waiting_unknown(engine, world)
    with system_session(engine) as s:
        s.add(
            WebhookEndpoint(
                org_id=world.org_id, url="https://hooks.example/x", event_types=["sent"], secret_encrypted="x"
            )
        )
    batch = resolve(engine, [message_id], ledger.Outcome.DELIVERED)
    assert batch.webhook_events == [batch.results[0].event_id]
    ledger.announce(redis, batch)
    job_id = f"publish-{batch.results[0].event_id}"
    assert redis.exists(f"rq:job:{job_id}")
    assert redis.lrange("rq:queue:inbound", 0, -1) == [job_id.encode()]
    streams: Any = redis.xread({"tw:events": "0"})
    [(_, [(_, fields)])] = streams
    assert fields[b"kind"] == b"sent"
    assert fields[b"message_id"] == str(message_id).encode()


# --------------------------------------------------------------------------- the command


def make_operator(engine: sa.Engine, email: str, *, operator: bool = True) -> uuid.UUID:
    with system_session(engine) as s:
        user = User(email=email, email_normalized=email.lower(), operator=operator)
        s.add(user)
        s.flush()
        return user.id


def sdr(database_url: str, redis_url: str, *args: str) -> Any:
    env = {"SDR_DATABASE_URL": database_url, "SDR_REDIS_URL": redis_url}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_sdr_resolve_prints_a_line_per_message_and_fails_if_any_was_not_resolved(
    engine: sa.Engine, database_url: str, redis_url: str
) -> None:
    operator_id = make_operator(engine, "Ada@Tidewater.test")
    make_operator(engine, "customer@acme.test", operator=False)
    world = create_world(engine, leads=2)
    unknown = waiting_unknown(engine, world)

    listed = sdr(database_url, redis_url, "unknown")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[0] == "1 unknown message(s)"
    assert str(unknown) in listed.output

    ok = sdr(database_url, redis_url, "resolve", str(unknown), "--delivered", "--operator", "ada@tidewater.test",
             "--note", "seen in the provider log")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert ok.stdout == f"{unknown} resolved delivered: now sent, enrollment completed\n"
    [event] = events(engine, unknown)
    resolution = event.data["resolution"]
    assert (resolution["operator_id"], resolution["operator_email"], resolution["via"]) == (
        str(operator_id),
        "Ada@Tidewater.test",
        "cli",
    )
    assert resolution["note"] == "seen in the provider log"
    assert datetime.fromisoformat(resolution["decided_at"]) == event.occurred_at

    again = sdr(database_url, redis_url, "resolve", str(unknown), "not-a-uuid", "--failed", "--operator",
                "ada@tidewater.test")  # fmt: skip
    assert again.exit_code == 1
    assert again.stdout.splitlines() == [
        "not-a-uuid not resolved (invalid): not a message id",
        f"{unknown} not resolved (not_unknown): The message is sent, not unknown: it was already resolved or never "
        "needed it.",
    ]

    refused = sdr(database_url, redis_url, "resolve", str(unknown), "--failed", "--operator", "customer@acme.test")
    assert refused.exit_code == 2
    assert "customer@acme.test is not an operator" in refused.output
    both = sdr(database_url, redis_url, "resolve", str(unknown), "--failed", "--resend", "--operator", "a@b.test")
    assert both.exit_code == 2
    assert "exactly one of --delivered, --resend or --failed" in both.output
    missing = sdr(database_url, redis_url, "resolve", str(unknown), "--failed")
    assert missing.exit_code == 2
    assert "--operator" in missing.output
    assert [e.type for e in events(engine, unknown)] == ["sent"]
