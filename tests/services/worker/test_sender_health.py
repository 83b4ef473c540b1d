"""Sender health: the rules that pause a sender, against the loopback SMTP and Twilio servers.

Each test counts what the server saw before and after the pause: the batch stops sending from
the paused sender at once, its next messages wait (``held``, ``sender_paused``) untried.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from libs.crypto import SecretBox
from libs.db.session import system_session
from libs.security import Role
from services.worker import jobs
from tests.gateway.ops.conftest import Ops, ops
from tests.services.brand.conftest import Actor, brand_settings, client, smtp_check
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import create_world
from tests.support.providers import ProviderServer, twilio_error
from tests.support.smtp import SmtpServer
from tests.support.tokens import TokenSigner
from tests.support.world import World

__all__ = ["brand_settings", "client", "ops", "smtp_check"]  # the brand app and the gateway, for resume and metrics

TWILIO = ("AC" + "7" * 32, "twilio-token-7")


def _sender(engine: sa.Engine, world: World, kind: str) -> sa.Row[Any]:
    with system_session(engine) as s:
        return s.execute(
            sa.text("SELECT * FROM senders WHERE org_id = :o AND kind = :k"), {"o": world.org_id, "k": kind}
        ).one()


def _after(calls: int, action: Callable[[], None]) -> Callable[[Any], None]:
    """A before_claim hook that runs ``action`` once, before the claim of the ``calls + 1``-th message."""
    seen = [0]

    def hook(_row: Any) -> None:
        seen[0] += 1
        if seen[0] == calls + 1:
            action()

    return hook


def _statuses(engine: sa.Engine, world: World) -> list[tuple[str, str | None, int]]:
    rows = messages(engine, world)
    return sorted((r.status, r.error_code or r.hold_reason, r.attempt) for r in rows)


def _smtp_pause(ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer, stage: str, reply: str) -> World:
    world = create_world(engine, leads=5, smtp=(smtp.host, smtp.port))
    with system_session(engine) as s:
        s.execute(
            sa.text(
                "INSERT INTO webhook_endpoints (id, org_id, url, event_types, secret_encrypted, active, created_at, "
                "updated_at) VALUES (gen_random_uuid(), :o, 'https://hooks.example/x', '[\"sender.paused\"]', 'x', "
                "true, now(), now())"
            ),
            {"o": world.org_id},
        )
    ctx.before_claim = _after(2, lambda: smtp.reply_at(stage, reply, times=None))  # type: ignore[arg-type]
    drain(ctx, redis)
    return world


def test_smtp_535_pauses_the_sender_at_once_and_the_rest_of_the_batch_is_not_sent(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = _smtp_pause(ctx, redis, engine, smtp, "MAIL", "535 5.7.8 Authentication credentials invalid")
    assert len(smtp.messages) == 2  # two before the pause, none after
    code = "smtp_535"
    assert _statuses(engine, world) == [
        ("failed", code, 1),
        *[("held", "sender_paused", 0)] * 2,
        *[("sent", None, 1)] * 2,
    ]
    sender = _sender(engine, world, "email")
    assert sender.paused_at is not None
    assert (sender.paused_rule, sender.paused_reason) == ("smtp_auth", "the SMTP server refused the credentials (535)")
    with system_session(engine) as s:
        [owed] = s.execute(sa.text("SELECT * FROM webhook_deliveries WHERE org_id = :o"), {"o": world.org_id}).all()
    assert (owed.event_type, owed.status, owed.payload["type"]) == ("sender.paused", "pending", "sender.paused")
    assert owed.payload["data"] == {
        "sender_id": str(sender.id),
        "brand_id": str(sender.brand_id),
        "kind": "email",
        "rule": "smtp_auth",
        "reason": "the SMTP server refused the credentials (535)",
    }


def test_smtp_530_pauses_the_sender(ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer) -> None:
    world = _smtp_pause(ctx, redis, engine, smtp, "MAIL", "530 5.7.0 Authentication required")
    assert len(smtp.messages) == 2
    assert [s for s, _, _ in _statuses(engine, world)].count("held") == 2
    assert _sender(engine, world, "email").paused_rule == "smtp_auth"


@pytest.mark.parametrize(
    ("stage", "reply", "code"),
    [("DATA", "554 5.7.1 Message rejected by policy", "smtp_554"), ("RCPT", "552 5.7.0 Sender blocked", "smtp_552")],
)
def test_smtp_552_and_554_policy_blocks_pause_the_sender(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer, stage: str, reply: str, code: str
) -> None:
    world = _smtp_pause(ctx, redis, engine, smtp, stage, reply)
    assert len(smtp.messages) == 2
    assert _statuses(engine, world)[0] == ("failed", code, 1)
    assert [s for s, _, _ in _statuses(engine, world)].count("held") == 2
    assert _sender(engine, world, "email").paused_rule == "smtp_policy"


def test_a_hard_bounce_rate_over_5_percent_of_the_last_100_pauses_the_sender(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, leads=10, smtp=(smtp.host, smtp.port))
    # two go, then six hard bounces: the sixth is over 5 of 100, the last two are never tried
    ctx.before_claim = _after(2, lambda: smtp.reply_at("RCPT", "550 5.1.1 No such user", times=6))
    drain(ctx, redis)
    assert len(smtp.messages) == 2
    statuses = _statuses(engine, world)
    assert [s for s, _, _ in statuses] == ["bounced"] * 6 + ["held"] * 2 + ["sent"] * 2
    sender = _sender(engine, world, "email")
    assert (sender.paused_rule, sender.paused_reason) == ("hard_bounce_rate", "6 hard bounces among the last 8 sends")


def test_five_hard_bounces_do_not_pause(ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer) -> None:
    world = create_world(engine, leads=7, smtp=(smtp.host, smtp.port))
    smtp.reply_at("RCPT", "550 5.1.1 No such user", times=5)
    drain(ctx, redis)
    assert len(smtp.messages) == 2
    assert _sender(engine, world, "email").paused_at is None


def test_twilio_20003_pauses_the_organizations_sms_and_voice(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, providers: ProviderServer
) -> None:
    box = SecretBox.from_settings(ctx.settings)
    world = create_world(engine, channels=("sms",), leads=5, twilio=TWILIO, box=box)
    ctx.before_claim = _after(2, lambda: providers.script("messages", *[twilio_error(401, 20003, "Authenticate")] * 3))
    drain(ctx, redis)
    assert len(providers.received("messages")) == 3  # two sent, the third refused; none after
    statuses = _statuses(engine, world)
    assert [s for s, _, _ in statuses] == ["failed", "held", "held", "sent", "sent"]
    assert _sender(engine, world, "sms").paused_rule == "twilio_auth"
    assert _sender(engine, world, "voice").paused_rule == "twilio_auth"


def test_during_the_cooldown_after_a_resume_no_rule_pauses_the_sender(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, leads=4, smtp=(smtp.host, smtp.port))
    with system_session(engine) as s:
        s.execute(
            # (the worker's clock runs up to a day ahead: noon in New York)
            sa.text("UPDATE senders SET pause_cooldown_until = now() + interval '2 days' WHERE org_id = :o"),
            {"o": world.org_id},
        )
    smtp.reply_at("MAIL", "535 5.7.8 Authentication credentials invalid", times=None)
    drain(ctx, redis)
    # every message was tried (and refused): the 535 did not pause the sender in its cooldown
    assert _statuses(engine, world) == [("failed", "smtp_535", 1)] * 4
    assert _sender(engine, world, "email").paused_at is None


def test_a_member_resumes_a_paused_sender_with_a_cooldown(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer, client: TestClient, signer: TokenSigner
) -> None:
    world = _smtp_pause(ctx, redis, engine, smtp, "MAIL", "535 5.7.8 Authentication credentials invalid")
    sender = _sender(engine, world, "email")
    actor = Actor(client, signer, world.org_id)
    path = f"/api/brands/{sender.brand_id}/senders/{sender.id}"
    shown = actor.get(path).json()
    assert (shown["paused_rule"], shown["pause_cooldown_until"]) == ("smtp_auth", None)
    assert shown["paused_at"] is not None
    assert actor.as_role(Role.VIEWER).post(f"{path}/resume").status_code == 403
    r = actor.as_role(Role.MEMBER).post(f"{path}/resume")
    assert r.status_code == 200, r.text
    read = r.json()
    assert (read["paused_at"], read["paused_rule"], read["paused_reason"]) == (None, None, None)
    cooldown = datetime.fromisoformat(read["pause_cooldown_until"]) - datetime.now(UTC)
    assert timedelta(minutes=59) < cooldown <= timedelta(hours=1)
    again = actor.post(f"{path}/resume")
    assert again.status_code == 422
    assert [e["field"] for e in again.json()["errors"]] == ["paused_at"]


def test_paused_senders_and_their_held_messages_show_in_metrics(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer, ops: Ops
) -> None:
    _smtp_pause(ctx, redis, engine, smtp, "MAIL", "535 5.7.8 Authentication credentials invalid")
    r = ops.client.get("/metrics", headers=ops.operator())
    assert r.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }
    assert samples[("tidewater_senders_paused", (("kind", "email"), ("rule", "smtp_auth")))] == 1
    assert samples[("tidewater_messages_held", (("channel", "email"), ("reason", "sender_paused")))] == 2


def test_messages_of_a_pool_whose_senders_are_all_paused_wait_and_go_once_a_sender_resumes(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, leads=3, smtp=(smtp.host, smtp.port))
    with system_session(engine) as s:
        s.execute(
            sa.text(
                "UPDATE senders SET paused_at = now(), paused_rule = 'smtp_auth', paused_reason = 'test' "
                "WHERE org_id = :o AND kind = 'email'"
            ),
            {"o": world.org_id},
        )
    drain(ctx, redis)
    assert smtp.messages == []
    assert _statuses(engine, world) == [("held", "sender_paused", 0)] * 3  # waiting, not skipped as no_sender
    with system_session(engine) as s:
        s.execute(sa.text("UPDATE senders SET paused_at = NULL WHERE org_id = :o"), {"o": world.org_id})
        # the recheck time has come
        s.execute(
            sa.text("UPDATE messages SET next_attempt_at = now() - interval '1 minute' WHERE campaign_id = :c"),
            {"c": world.campaign_id},
        )
    drain(ctx, redis)
    assert len(smtp.messages) == 3
    assert _statuses(engine, world) == [("sent", None, 1)] * 3
