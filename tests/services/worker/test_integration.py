"""The worker against what the other boxes built: Twilio callback routes, templates and variants, click
tracking, customer webhooks, stops from inbound, live events, and webhook retries driven by the ledger."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from twilio.request_validator import RequestValidator

from libs import events, templating
from libs.app import create_service_app
from libs.crypto import SecretBox
from libs.db.base import utcnow
from libs.db.session import system_session
from libs.links import LinkKind, unsubscribe_url, verify_link
from libs.queue import QueueName, get_queue
from services.worker import jobs
from services.worker.ticker import Ticker
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import create_world
from tests.support.providers import ProviderServer
from tests.support.smtp import SmtpServer
from tests.support.tokens import TokenSigner

TWILIO = ("AC" + "4" * 32, "twilio-token-4")


def inbound_jobs(redis: Redis) -> list[tuple[str, tuple[Any, ...]]]:
    return [(job.func_name, tuple(job.args)) for job in get_queue(QueueName.INBOUND, redis).get_jobs()]


@pytest.fixture
def inbound_client(ctx: jobs.Context, signer: TokenSigner, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The campaign service's inbound routes, public at the URL the worker gives Twilio; jobs see the same env."""
    from services.campaign.inbound import jobs as inbound_jobs_module
    from services.campaign.inbound.controllers import INBOUND_CONTROLLERS
    from services.campaign.inbound.settings import InboundSettings

    settings = ctx.settings
    for name, value in {
        "SDR_ENV": "test",
        "SDR_DATABASE_URL": settings.database_url,
        "SDR_REDIS_URL": settings.redis_url,
        "SDR_PUBLIC_BASE_URL": settings.public_base_url,
    }.items():
        monkeypatch.setenv(name, value)
    inbound = InboundSettings(
        env=settings.env,
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        public_base_url=settings.public_base_url,
    )
    app = create_service_app(
        name="campaign",
        title="inbound",
        settings=inbound,
        route_handlers=INBOUND_CONTROLLERS,
        verifier=signer.verifier(),
        state={"inbound_settings": inbound},
    )
    with TestClient(app) as client:
        yield client
    inbound_jobs_module.dispose()


def run_inbound(redis: Redis) -> None:
    queue = get_queue(QueueName.INBOUND, redis)
    SimpleWorker([queue], connection=redis, serializer=JSONSerializer).work(burst=True, with_scheduler=False)
    assert queue.failed_job_registry.count == 0


# --------------------------------------------------------------------------- a. Twilio status callbacks


def test_status_callbacks_go_to_the_inbound_routes_and_find_their_message(
    ctx: jobs.Context,
    redis: Redis,
    engine: sa.Engine,
    providers: ProviderServer,
    inbound_client: TestClient,  # type: ignore[type-arg]
) -> None:
    box = SecretBox.from_settings(ctx.settings)
    world = create_world(engine, channels=("sms", "voicemail"), twilio=TWILIO, box=box)
    drain(ctx, redis)
    sms, call = messages(engine, world)
    assert (sms.status, call.status) == ("sent", "sent")
    [sms_request] = providers.received("messages")
    [call_request] = providers.received("calls")
    base = ctx.settings.public_base_url
    assert sms_request.form["StatusCallback"] == f"{base}/hooks/twilio/messages/status?message_id={sms.id}"
    assert call_request.form["StatusCallback"] == f"{base}/hooks/twilio/calls/status?message_id={call.id}"

    # The callback may beat the worker's record: the message is found through ?message_id= alone.
    sms_sid = sms.provider_message_id
    with system_session(engine) as s:
        s.execute(sa.text("UPDATE messages SET provider_message_id = NULL WHERE id = :id"), {"id": sms.id})
    for request, params in (
        (sms_request, {"AccountSid": TWILIO[0], "MessageSid": sms_sid, "MessageStatus": "delivered"}),
        (
            call_request,
            {"AccountSid": TWILIO[0], "CallSid": call.provider_message_id, "CallStatus": "completed"},
        ),
    ):
        url = request.form["StatusCallback"]
        signature = RequestValidator(TWILIO[1]).compute_signature(url, params)
        parts = urlsplit(url)
        answer = inbound_client.post(
            f"{parts.path}?{parts.query}", data=params, headers={"X-Twilio-Signature": signature}
        )
        assert answer.status_code == 200, answer.text
    run_inbound(redis)
    sms, call = messages(engine, world)
    assert (sms.status, sms.provider_message_id) == ("delivered", sms_sid)
    assert call.status == "delivered"


# --------------------------------------------------------------------------- b. templates and variants


def test_templates_render_lead_and_brand_names_and_variants_are_chosen_and_recorded(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, leads=16, smtp=(smtp.host, smtp.port))
    variants = [
        {"key": "short", "weight": 1, "subject_template": "{{ brand.name }} x {{ lead.company }}"},
        {
            "key": "long",
            "weight": 1,
            "body_template": "Dear {{ lead.first_name }} ({{ first_name }}), {{ brand.name }}.",
        },
    ]
    with system_session(engine) as s:
        s.execute(
            sa.text("UPDATE campaign_steps SET variants = CAST(:v AS jsonb) WHERE id = :id"),
            {"v": json.dumps(variants), "id": world.step_ids[0]},
        )
    drain(ctx, redis)
    rows = messages(engine, world)
    assert {r.status for r in rows} == {"sent"}
    by_rcpt = {m.rcpt_tos[0]: m.parsed() for m in smtp.messages}
    with system_session(engine) as s:
        leads = {r.id: r for r in s.execute(sa.text("SELECT * FROM leads WHERE org_id = :o"), {"o": world.org_id})}
    seen = set()
    for row in rows:
        lead = leads[row.lead_id]
        chosen = templating.choose_variant(row.enrollment_id, row.step_id, variants)
        assert chosen is not None
        assert row.variant == chosen["key"]
        seen.add(row.variant)
        mail = by_rcpt[lead.email]
        text = mail.get_body(("plain",)).get_content()
        if row.variant == "short":
            assert row.subject == f"Acme Analytics x {lead.company}"
            assert text.startswith(f"Hi {lead.first_name},")
        else:
            assert row.subject == f"Idea for {lead.company}"
            assert text.startswith(f"Dear {lead.first_name} ({lead.first_name}), Acme Analytics.")
        assert mail["Subject"] == row.subject
    assert seen == {"short", "long"}


# --------------------------------------------------------------------------- c. click tracking


def test_email_links_are_tracked_and_stored_with_the_body(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, smtp=(smtp.host, smtp.port))
    body = "Hi {{ lead.first_name }}, see https://acme.example/pricing and https://acme.example/docs?a=1."
    with system_session(engine) as s:
        s.execute(sa.text("UPDATE campaign_steps SET body_template = :b"), {"b": body})
    drain(ctx, redis)
    [row] = messages(engine, world)
    assert row.status == "sent"
    assert row.body == "Hi Lead0, see https://acme.example/pricing and https://acme.example/docs?a=1."
    with system_session(engine) as s:
        links = s.execute(
            sa.text("SELECT position, url, org_id FROM message_links WHERE message_id = :m ORDER BY position"),
            {"m": row.id},
        ).all()
    assert [(p, u) for p, u, _ in links] == [(0, "https://acme.example/pricing"), (1, "https://acme.example/docs?a=1")]
    assert {o for _, _, o in links} == {world.org_id}
    [mail] = smtp.messages
    msg = mail.parsed()
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "acme.example/pricing" not in text
    base = ctx.settings.public_base_url
    secret = ctx.settings.secret_key.get_secret_value()
    tokens = [part.split()[0].rstrip(".") for part in text.split(f"{base}/c/")[1:]]
    claims = [verify_link(secret, token, LinkKind.CLICK) for token in tokens]
    assert [(c.message_id, c.url_index) for c in claims] == [(row.id, 0), (row.id, 1)]
    assert f'src="{base}/o/' in html
    assert msg["List-Unsubscribe"].startswith(f"<{unsubscribe_url(secret, base, row.id)}>")


# --------------------------------------------------------------------------- d. customer webhooks


def test_recorded_events_are_owed_to_subscribed_customer_endpoints(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, leads=2, smtp=(smtp.host, smtp.port))
    with system_session(engine) as s:
        s.execute(
            sa.text(
                "INSERT INTO webhook_endpoints (id, org_id, url, event_types, secret_encrypted, active, created_at, "
                "updated_at) VALUES (:id, :o, 'https://hooks.example/x', '[\"sent\", \"bounced\"]', 'x', true, "
                "now(), now())"
            ),
            {"id": uuid.uuid4(), "o": world.org_id},
        )
    smtp.reply_at("RCPT", "550 5.1.1 No such user")  # the first message bounces
    drain(ctx, redis)
    quiet = create_world(engine, leads=1, smtp=(smtp.host, smtp.port))  # no endpoint: nothing owed
    drain(ctx, redis)
    rows = messages(engine, world)
    assert sorted(r.status for r in rows) == ["bounced", "sent"]
    assert [r.status for r in messages(engine, quiet)] == ["sent"]
    with system_session(engine) as s:
        owed = s.execute(
            sa.text(
                "SELECT id, type FROM message_events WHERE org_id = :o AND type IN ('sent', 'bounced') ORDER BY type"
            ),
            {"o": world.org_id},
        ).all()
    assert [t for _, t in owed] == ["bounced", "sent"]
    assert sorted(inbound_jobs(redis)) == sorted(
        ("services.campaign.inbound.jobs.publish_message_event", (str(event_id),)) for event_id, _ in owed
    )


# --------------------------------------------------------------------------- e. stops from inbound


def test_a_message_of_an_enrollment_stopped_by_a_reply_never_goes_out(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    from services.campaign.inbound.repository import stop_enrollments

    world = create_world(engine, leads=3, smtp=(smtp.host, smtp.port))
    Ticker(ctx.settings, ctx.engine, redis).tick()  # every message is queued, its job in Redis
    replied, racing = world.lead_ids[0], world.lead_ids[1]
    with system_session(engine) as s:
        stop_enrollments(s, org_id=world.org_id, lead_ids=[replied], reason="replied", now=utcnow())

    def reply_arrives(row: Any) -> None:
        # The reply lands after the gate passed the message and before the claim.
        if row.lead_id == racing:
            with system_session(engine) as s:
                stop_enrollments(s, org_id=world.org_id, lead_ids=[racing], reason="replied", now=utcnow())

    ctx.before_claim = reply_arrives
    drain(ctx, redis)
    rows = {r.lead_id: r for r in messages(engine, world)}
    assert (rows[replied].status, rows[replied].attempt) == ("skipped", 0)
    assert (rows[racing].status, rows[racing].attempt) == ("skipped", 0)
    assert rows[world.lead_ids[2]].status == "sent"
    assert [m.rcpt_tos for m in smtp.messages] == [["lead2@example2.test"]]


# --------------------------------------------------------------------------- f. live events


def test_sent_and_held_messages_are_published_as_live_events(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, leads=2, smtp=(smtp.host, smtp.port), hourly_limit=1)
    drain(ctx, redis)
    rows = {r.id: r.status for r in messages(engine, world)}
    assert sorted(rows.values()) == ["held", "sent"]
    _, published = events.read(redis, "0-0")
    mine = [e for e in published if e.campaign_id == str(world.campaign_id)]
    assert sorted((e.fields["message_id"], e.kind) for e in mine) == sorted((str(i), s) for i, s in rows.items())
    assert {e.org_id for e in mine} == {str(world.org_id)}
    held = next(e for e in mine if e.kind == "held")
    assert held.fields["reason"] == "cap_sender_hour"


# --------------------------------------------------------------------------- g. webhook retries from the ledger


def test_the_ticker_enqueues_due_webhook_attempts_once_per_lease(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine
) -> None:
    world = create_world(engine)
    endpoint, due, later, fresh = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = ctx.now()
    with system_session(engine) as s:
        s.execute(
            sa.text(
                "INSERT INTO webhook_endpoints (id, org_id, url, event_types, secret_encrypted, active, created_at, "
                "updated_at) VALUES (:id, :o, 'https://hooks.example/x', '[\"sent\"]', 'x', true, now(), now())"
            ),
            {"id": endpoint, "o": world.org_id},
        )
        for delivery, attempts, next_at in (
            (due, 2, now - timedelta(seconds=1)),
            (later, 1, now + timedelta(hours=1)),
            (fresh, 0, None),
        ):
            s.execute(
                sa.text(
                    "INSERT INTO webhook_deliveries (id, org_id, endpoint_id, event_id, event_type, payload, status, "
                    "attempts, next_attempt_at, created_at, updated_at) VALUES (:id, :o, :e, :ev, 'sent', '{}', "
                    "'pending', :n, :at, :created, now())"
                ),
                {"id": delivery, "o": world.org_id, "e": endpoint, "ev": uuid.uuid4(), "n": attempts, "at": next_at,
                 "created": now},
            )  # fmt: skip
    ticker = Ticker(ctx.settings, ctx.engine, redis)
    assert ticker.dispatch_webhooks() == 1
    assert inbound_jobs(redis) == [("services.campaign.inbound.jobs.deliver_webhook", (str(due),))]
    assert get_queue(QueueName.INBOUND, redis).fetch_job(f"webhook-{due}-3") is not None
    assert ticker.dispatch_webhooks() == 0  # leased: not enqueued again while its job waits
    # A first attempt whose job went missing is enqueued once it is clearly overdue.
    ctx.settings.clock_offset_seconds += 120
    assert ticker.dispatch_webhooks() == 1
    assert ("services.campaign.inbound.jobs.deliver_webhook", (str(fresh),)) in inbound_jobs(redis)
