"""What a recipient gets from a sequence: one signature, threaded follow-ups, the Message-ID in the ledger."""

from __future__ import annotations

import re
from email.message import EmailMessage

import sqlalchemy as sa
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from libs.db.session import system_session
from libs.queue import get_queue
from services.worker import jobs
from services.worker.ticker import Ticker
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import create_world
from tests.support.smtp import SmtpServer

SIGNATURE = "Sam Carter\nHead of Growth"


def one_round(ctx: jobs.Context, redis: Redis) -> None:
    """One tick and one burst of work: the enrollment's next step only."""
    Ticker(ctx.settings, ctx.engine, redis).tick()
    queues = [get_queue(q, redis) for q in ("email", "sms", "voicemail")]
    SimpleWorker(queues, connection=redis, serializer=JSONSerializer).work(burst=True)


def execute(engine: sa.Engine, sql: str, **params: object) -> None:
    with system_session(engine) as s:
        s.execute(sa.text(sql), params)


def received(smtp: SmtpServer) -> list[EmailMessage]:
    return [m.parsed() for m in smtp.messages]


def ids(value: str | None) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value or "")


def test_a_template_using_the_signature_carries_it_once(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, channels=("email", "email"), smtp=(smtp.host, smtp.port))
    execute(engine, "UPDATE brands SET email_signature = :s WHERE id = :b", s=SIGNATURE, b=world.brand_id)
    execute(
        engine,
        "UPDATE campaign_steps SET body_template = :t WHERE id = :id",
        t="Hi {{ lead.first_name }},\n\nA note.\n\n{{ brand.email_signature }}",
        id=world.step_ids[0],
    )
    drain(ctx, redis)
    first, second = received(smtp)
    for msg in (first, second):  # referenced by the template, or not: once either way
        text = msg.get_body(("plain",)).get_content()
        markup = msg.get_body(("html",)).get_content()
        assert text.count("Head of Growth") == 1, text
        assert markup.count("Head of Growth") == 1, markup
    rows = messages(engine, world)
    assert rows[0].body.count("Head of Growth") == 1  # the ledger keeps what went out


def test_follow_ups_thread_on_the_previous_emails_of_the_enrollment(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, channels=("email", "sms", "email", "email"), smtp=(smtp.host, smtp.port))
    drain(ctx, redis)
    first, second, third = received(smtp)
    assert first["In-Reply-To"] is None
    assert first["References"] is None
    one, two = first["Message-ID"], second["Message-ID"]
    assert second["In-Reply-To"] == one
    assert ids(second["References"]) == [one]
    assert third["In-Reply-To"] == two
    assert ids(third["References"]) == [one, two]  # RFC 5322 3.6.4: the thread, oldest first
    emails = [r for r in messages(engine, world) if r.channel == "email"]
    # The ledger knows each email by the Message-ID replies will reference.
    assert [r.provider_message_id for r in emails] == [one, two, third["Message-ID"]]


def test_threads_are_kept_per_enrollment(ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer) -> None:
    create_world(engine, channels=("email", "email"), leads=3, smtp=(smtp.host, smtp.port))
    drain(ctx, redis)
    got = received(smtp)
    assert len(got) == 6
    by_id = {m["Message-ID"]: m for m in got}
    follow_ups = [m for m in got if m["In-Reply-To"] is not None]
    assert len(follow_ups) == 3
    for follow_up in follow_ups:
        parent = by_id[follow_up["In-Reply-To"]]
        assert parent["To"] == follow_up["To"]
        assert parent["In-Reply-To"] is None


def test_a_follow_up_from_another_sender_starts_a_new_thread(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, channels=("email", "email"), smtp=(smtp.host, smtp.port))
    one_round(ctx, redis)
    assert len(smtp.messages) == 1
    execute(engine, "UPDATE senders SET from_address = 'ann@acme-mail.example' WHERE brand_id = :b", b=world.brand_id)
    drain(ctx, redis)
    _, second = received(smtp)
    assert second["From"].endswith("<ann@acme-mail.example>")
    assert second["In-Reply-To"] is None
    assert second["References"] is None


def test_an_email_recorded_before_message_ids_were_kept_is_still_threaded(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, channels=("email", "email"), smtp=(smtp.host, smtp.port))
    one_round(ctx, redis)
    [first] = received(smtp)
    # What the ledger held before: the SMTP server's answer to the final ".".
    execute(engine, "UPDATE messages SET provider_message_id = 'Message accepted for delivery'")
    drain(ctx, redis)
    _, second = received(smtp)
    assert second["In-Reply-To"] == first["Message-ID"]
    assert ids(second["References"]) == [first["Message-ID"]]
    assert messages(engine, world)[1].provider_message_id == second["Message-ID"]
