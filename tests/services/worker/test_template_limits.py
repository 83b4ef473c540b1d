"""A step template over a render bound fails its message with the bound as the reason; it never loops or goes out."""

from __future__ import annotations

import sqlalchemy as sa
from redis import Redis

from libs.crypto import SecretBox
from libs.db.session import system_session
from services.worker import jobs
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import create_world
from tests.support.providers import ProviderServer

# Accepted when saved (lead.custom is empty then), costly with the lead's real custom fields.
COSTLY = "Hi {% for k in lead.custom %}{% for i in range(9000) %}{% endfor %}{% endfor %}{{ lead.first_name }}"


def test_a_template_over_the_step_budget_fails_the_message_once_with_its_reason(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine
) -> None:
    world = create_world(engine, channels=("sms", "sms"), lead_overrides={"custom_fields": {"a": "1", "b": "2"}})
    with system_session(engine) as s:
        s.execute(
            sa.text("UPDATE campaign_steps SET sms_template = :t WHERE id = :id"),
            {"t": COSTLY, "id": world.step_ids[0]},
        )
    drain(ctx, redis)
    first, second = messages(engine, world)
    assert (first.status, first.hold_reason) == ("failed", "template_step_limit")
    assert first.attempt == 0  # never claimed: nothing was handed to a provider
    assert second.status == "sent"  # the enrollment moved on, as after any failed step
    with system_session(engine) as s:
        events = s.execute(
            sa.text("SELECT id, type, data FROM message_events WHERE message_id = :m"), {"m": first.id}
        ).all()
    [failed] = [e for e in events if e.type == "failed"]  # on the message's page, and owed to webhooks
    assert failed.data["reason"] == "template_step_limit"
    assert redis.exists(f"rq:job:publish-{failed.id}"), (redis.keys("*"), failed.id)  # the customer webhook job
    [record] = ctx.recorder.read("sms")
    assert record["body"].startswith("Hi Lead0, step 2.")
    drain(ctx, redis)  # a second pass changes nothing: no crash loop, no retry
    again, _ = messages(engine, world)
    assert (again.status, again.hold_reason, again.updated_at) == ("failed", "template_step_limit", first.updated_at)


def test_with_a_model_configured_the_template_fails_before_the_model_is_asked(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, providers: ProviderServer
) -> None:
    box = SecretBox.from_settings(ctx.settings)
    world = create_world(
        engine, channels=("sms",), box=box, openai_key="sk-test", lead_overrides={"custom_fields": {"a": "1", "b": "2"}}
    )
    with system_session(engine) as s:
        s.execute(
            sa.text("UPDATE campaign_steps SET sms_template = :t WHERE id = :id"),
            {"t": COSTLY, "id": world.step_ids[0]},
        )
    drain(ctx, redis)
    [row] = messages(engine, world)
    assert (row.status, row.hold_reason) == ("failed", "template_step_limit")
    assert providers.count("chat") == 0
    assert ctx.recorder.read("sms") == []
