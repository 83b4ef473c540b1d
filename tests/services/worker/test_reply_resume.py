"""An out-of-office reply holds the sequence until its return date, then the ticker sends the next step once.

The whole path runs for real: the worker sends step 1 over SMTP, the inbound email job classifies
the reply and pauses the enrollment, and with the clock moved (time-machine) past the return
date the ticker claims the enrollment at the next open window and the worker sends step 2.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import time_machine
from pydantic import SecretStr
from redis import Redis

from libs.db.session import system_session
from libs.suppression import stored_hash_key
from services.campaign.inbound import email
from services.campaign.inbound.events import Context as InboundContext
from services.campaign.inbound.events import Effects
from services.campaign.inbound.settings import InboundSettings
from services.worker import jobs
from services.worker.settings import WorkerSettings
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import create_world
from tests.support.smtp import SmtpServer

NEW_YORK = ZoneInfo("America/New_York")
OFFICE_HOURS = {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}


@pytest.fixture
def real_clock(wsettings: WorkerSettings) -> Iterator[jobs.Context]:
    """A worker context on the process clock (no offset): time-machine moves it."""
    context = jobs.Context.create(wsettings.model_copy(update={"clock_offset_seconds": 0}))
    jobs.install(context)
    yield context
    context.close()
    jobs.install(None)


def next_saturday(after: date) -> date:
    return after + timedelta(days=(5 - after.weekday()) % 7 or 7)


def out_of_office(message_id: uuid.UUID, until: date) -> bytes:
    return (
        "From: Lead Zero <lead0@example0.test>\r\n"
        "To: Sam <sam@acme.example>\r\n"
        "Subject: Re: Idea for Company 0\r\n"
        f"Message-ID: <ooo-{uuid.uuid4().hex}@example0.test>\r\n"
        f"In-Reply-To: <{message_id}@acme.example>\r\n"
        f"References: <{message_id}@acme.example>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Hi, I am out of the office until {until:%B} {until.day}, {until.year} with limited access to email.\r\n"
    ).encode()


def receive_reply(wsettings: WorkerSettings, engine: sa.Engine, raw: bytes) -> str:
    """The inbound side, as the hook and its job run it: store the email, then apply it."""
    settings = InboundSettings(
        env=wsettings.env,
        database_url=wsettings.database_url,
        redis_url=wsettings.redis_url,
        inbound_email_secret=SecretStr("unused"),
    )
    ctx = InboundContext.from_settings(settings, suppression_key=stored_hash_key(engine, settings))
    with system_session(engine) as s:
        outcome = email.receive(s, ctx, Effects(), raw)
    assert outcome.status == "accepted", outcome
    assert outcome.event_id is not None
    with system_session(engine) as s:
        return email.process(s, ctx, Effects(), outcome.event_id)


def test_an_out_of_office_resumes_at_the_next_open_window_after_its_return_date_and_sends_once(
    real_clock: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, channels=("email", "email"), smtp=(smtp.host, smtp.port), delay_minutes=60)
    with system_session(engine) as s:  # step 2 keeps office hours in the lead's zone (New York)
        s.execute(
            sa.text(
                "UPDATE campaign_steps SET send_window = CAST(:w AS jsonb) WHERE campaign_id = :c AND position = 2"
            ),
            {"w": json.dumps(OFFICE_HOURS), "c": world.campaign_id},
        )
    drain(real_clock, redis)
    (first,) = messages(engine, world)
    assert first.status == "sent"
    assert len(smtp.messages) == 1

    back = next_saturday(datetime.now(NEW_YORK).date() + timedelta(days=1))
    assert receive_reply(real_clock.settings, engine, out_of_office(first.id, back)) == "reply"
    monday_nine = datetime.combine(back + timedelta(days=2), time(9, 0), tzinfo=NEW_YORK)
    with system_session(engine) as s:
        e = s.execute(sa.text("SELECT status, next_due_at, paused_until, paused_reason FROM enrollments")).one()
    assert (e.status, e.paused_reason) == ("active", "out_of_office")
    assert e.paused_until == datetime.combine(back, time(0), tzinfo=NEW_YORK)
    assert e.next_due_at == monday_nine  # Saturday's return: the window opens on Monday at 09:00

    drain(real_clock, redis)  # nothing is due before the return
    assert len(messages(engine, world)) == 1
    with time_machine.travel(monday_nine - timedelta(minutes=1), tick=False):
        drain(real_clock, redis)
    assert len(messages(engine, world)) == 1
    with time_machine.travel(monday_nine + timedelta(minutes=1), tick=True):
        drain(real_clock, redis)
        drain(real_clock, redis)
    rows = messages(engine, world)
    assert [(r.position, r.status) for r in rows] == [(1, "sent"), (2, "sent")]
    assert rows[1].sent_at.astimezone(UTC) >= monday_nine.astimezone(UTC)
    assert len(smtp.messages) == 2
