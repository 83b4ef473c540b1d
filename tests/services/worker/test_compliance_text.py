"""Texts and voicemails always tell the recipient how to stop; erased leads get no new audit copy."""

from __future__ import annotations

import json
from decimal import Decimal

import sqlalchemy as sa
from redis import Redis

from libs.compose import with_closing
from libs.crypto import SecretBox
from libs.db.session import system_session
from services.worker import jobs, ledger
from services.worker.ticker import Ticker
from tests.services.worker.conftest import drain
from tests.services.worker.factories import create_world
from tests.support.providers import ProviderServer

TWILIO = ("AC" + "5" * 32, "twilio-token-5")
OPT_OUT_SMS = "Reply STOP to opt out."
OPT_OUT_VOICE = "To stop these calls, reply STOP to this number."


def test_closing_is_added_once_whatever_the_case() -> None:
    assert with_closing("Hi Ada!", "- Sam", OPT_OUT_SMS) == f"Hi Ada! - Sam {OPT_OUT_SMS}"
    assert with_closing(f"Hi Ada! {OPT_OUT_SMS.upper()}", None, OPT_OUT_SMS) == f"Hi Ada! {OPT_OUT_SMS.upper()}"
    assert with_closing("Hi Ada!", "", "  ") == "Hi Ada!"


def test_every_text_and_voicemail_carries_the_brands_opt_out_wording(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, providers: ProviderServer
) -> None:
    world = create_world(
        engine, channels=("sms", "voicemail"), leads=2, twilio=TWILIO, box=SecretBox.from_settings(ctx.settings)
    )
    with system_session(engine) as s:
        s.execute(
            sa.text("UPDATE brands SET opt_out_sms = :sms, opt_out_voicemail = :voice WHERE org_id = :org"),
            {"sms": OPT_OUT_SMS, "voice": OPT_OUT_VOICE, "org": world.org_id},
        )
    drain(ctx, redis)
    texts = [r.form["Body"] for r in providers.received("messages")]
    calls = [r.form["Twiml"] for r in providers.received("calls")]
    assert len(texts) == 2
    assert all(t.endswith(OPT_OUT_SMS) for t in texts)
    assert len(calls) == 2
    assert all(OPT_OUT_VOICE in c for c in calls)
    with system_session(engine) as s:
        bodies = s.execute(sa.text("SELECT channel, body FROM messages WHERE org_id = :o"), {"o": world.org_id}).all()
    # The ledger keeps what was really sent, closing included.
    assert {b.channel for b in bodies if OPT_OUT_SMS in b.body or OPT_OUT_VOICE in b.body} == {"sms", "voicemail"}


def test_no_audit_copy_is_frozen_for_a_lead_erased_after_the_gate(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine
) -> None:
    world = create_world(engine)
    Ticker(ctx.settings, ctx.engine, redis).tick()
    with system_session(engine) as s:
        message = s.execute(sa.text("SELECT * FROM messages WHERE org_id = :o"), {"o": world.org_id}).one()
        # The erasure commits between the worker's gate and its freeze.
        s.execute(sa.text("UPDATE leads SET erased_at = now() WHERE id = :l"), {"l": message.lead_id})
    params = {
        "org_ids": [message.org_id],
        "message_ids": [message.id],
        "enrollment_ids": [message.enrollment_id],
        "step_ids": [message.step_id],
        "channels": ["email"],
        "sources": ["local"],
        "models": ["local"],
        "prompts": [json.dumps({"lead": "Ada"})],
        "inputs": [json.dumps({"first_name": "Ada"})],
        "outputs": [None],
        "contents": [json.dumps({"body": "Hi Ada"})],
        "fallback_reasons": [None],
        "prompt_tokens": [0],
        "completion_tokens": [0],
        "costs": [Decimal(0)],
        "latencies": [0],
        "prompt_version": "test",
        "now": message.created_at,
    }
    with system_session(engine) as s:
        written = s.execute(ledger.FREEZE, params).all()
        count = s.execute(sa.text("SELECT count(*) FROM personalizations")).scalar_one()
    assert written == []
    assert count == 0
