"""Review mode end to end: the worker holds first touches until a person approves them, and sends each once after.

The campaign service's review routes (in-process) approve and reject; the ticker and the worker
(in-process RQ worker) send to the loopback SMTP server, which shows what went out and how often.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from redis import Redis

from libs.crypto import SecretBox
from libs.db.session import system_session
from libs.security import Role
from libs.settings import Environment
from services.campaign.app import create_app
from services.campaign.campaigns.brand_client import BrandClient
from services.campaign.settings import CampaignSettings
from services.worker import jobs
from services.worker.ticker import Ticker
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import World, create_world
from tests.support.providers import ProviderServer
from tests.support.smtp import SmtpServer
from tests.support.tokens import TokenSigner

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def api(ctx: jobs.Context, signer: TokenSigner) -> Iterator[TestClient]:  # type: ignore[type-arg]
    settings = CampaignSettings(
        env=Environment.TEST, database_url=ctx.settings.database_url, redis_url=ctx.settings.redis_url
    )
    app = create_app(settings, verifier=signer.verifier(), brand_client=BrandClient("http://127.0.0.1:9", timeout=5))
    with TestClient(app) as client:
        yield client


def _headers(signer: TokenSigner, world: World, role: Role = Role.MEMBER) -> dict[str, str]:
    return signer.headers(org_id=world.org_id, role=role)


def _bodies(smtp: SmtpServer) -> list[tuple[str, str, str]]:
    """(recipient, subject, plain text) of every email the SMTP server accepted, in arrival order."""
    out = []
    for received in smtp.messages:
        parsed = received.parsed()
        plain = parsed.get_body(preferencelist=("plain",))
        assert plain is not None
        out.append((received.rcpt_tos[0], str(parsed["Subject"]), plain.get_content()))
    return out


def _by_lead(engine: sa.Engine, world: World) -> dict[uuid.UUID, Any]:
    """Each lead's first-step message."""
    return {r.lead_id: r for r in messages(engine, world) if r.position == 1}


def _enrollment(engine: sa.Engine, enrollment_id: uuid.UUID) -> Any:
    with system_session(engine) as s:
        return s.execute(sa.text("SELECT * FROM enrollments WHERE id = :id"), {"id": enrollment_id}).one()


def test_review_all_holds_every_first_touch_and_sends_each_once_after_approval(
    ctx: jobs.Context,
    redis: Redis,
    engine: sa.Engine,
    smtp: SmtpServer,
    api: TestClient,  # type: ignore[type-arg]
    signer: TokenSigner,
) -> None:
    world = create_world(
        engine,
        leads=4,
        channels=("email", "email"),
        smtp=(smtp.host, smtp.port),
        campaign_overrides={"review_mode": "all"},
    )
    member = _headers(signer, world)
    drain(ctx, redis)
    assert smtp.messages == []  # nothing went out before a person approved it
    rows = _by_lead(engine, world)
    assert [r.status for r in rows.values()] == ["awaiting_review"] * 4
    assert all(r.position == 1 and r.attempt == 0 and r.body and r.subject for r in rows.values())
    assert all(_enrollment(engine, e).next_step_position == 1 for e in world.enrollment_ids)  # not advanced

    queue = api.get(f"/api/campaigns/{world.campaign_id}/review?limit=3", headers=_headers(signer, world, Role.VIEWER))
    assert queue.status_code == 200, queue.text
    assert len(queue.json()["items"]) == 3
    assert queue.json()["next_cursor"]
    rest = api.get(
        f"/api/campaigns/{world.campaign_id}/review?limit=3&cursor={queue.json()['next_cursor']}", headers=member
    )
    listed = {i["id"] for i in queue.json()["items"]} | {i["id"] for i in rest.json()["items"]}
    assert listed == {str(r.id) for r in rows.values()}

    edited, rejected, refused, later = (rows[lead] for lead in world.lead_ids)
    viewer = api.post(f"/api/messages/{edited.id}/approve", json={}, headers=_headers(signer, world, Role.VIEWER))
    assert viewer.status_code == 403

    # The gate runs again on the text at approval: a forbidden claim or a foreign link is refused, nothing changes.
    bad = api.post(
        f"/api/messages/{refused.id}/approve",
        json={"body": "Guaranteed results within a week, see https://elsewhere.example/x"},
        headers=member,
    )
    assert bad.status_code == 422, bad.text
    assert {(e["field"], e["reason"]) for e in bad.json()["errors"]} == {
        ("body", "forbidden_claim"),
        ("body", "foreign_link"),
    }
    assert _by_lead(engine, world)[refused.lead_id].status == "awaiting_review"

    ok = api.post(
        f"/api/messages/{edited.id}/approve",
        json={"subject": "A better subject", "body": "Hi there,\n\nEdited by a person.", "note": "tone"},
        headers=member,
    )
    assert ok.status_code == 200, ok.text
    assert (ok.json()["status"], ok.json()["body"], ok.json()["review_note"]) == (
        "queued",
        "Hi there,\n\nEdited by a person.",
        "tone",
    )
    assert ok.json()["reviewed_at"] is not None
    assert ok.json()["reviewed_by"] is not None
    again = api.post(f"/api/messages/{edited.id}/approve", json={}, headers=member)
    assert again.status_code == 409, again.text

    no_reason = api.post(f"/api/messages/{rejected.id}/reject", json={}, headers=member)
    assert no_reason.status_code == 422
    assert any(e["field"] == "reason" for e in no_reason.json()["errors"]), no_reason.text
    gone = api.post(f"/api/messages/{rejected.id}/reject", json={"reason": "off-brand"}, headers=member)
    assert gone.status_code == 200, gone.text
    assert (gone.json()["status"], gone.json()["hold_reason"], gone.json()["review_note"]) == (
        "skipped",
        "review_rejected",
        "off-brand",
    )
    assert api.post(f"/api/messages/{rejected.id}/approve", json={}, headers=member).status_code == 409

    drain(ctx, redis)
    sent = _bodies(smtp)
    assert len(sent) == 1  # exactly the approved one, once
    recipient, subject, text = sent[0]
    assert recipient == "lead0@example0.test"
    assert subject == "A better subject"
    assert "Edited by a person." in text
    after = _by_lead(engine, world)
    assert (after[edited.lead_id].status, after[edited.lead_id].attempt) == ("sent", 1)
    assert (after[rejected.lead_id].status, after[rejected.lead_id].attempt) == ("skipped", 0)
    assert after[refused.lead_id].status == after[later.lead_id].status == "awaiting_review"
    # The rejected message's enrollment moved on to step 2 (as after any skip); step 2 is reviewed too.
    assert _enrollment(engine, world.enrollment_ids[1]).next_step_position == 2

    ids = [str(refused.id), str(later.id), str(rejected.id)]
    bulk = api.post(f"/api/campaigns/{world.campaign_id}/review/approve", json={"message_ids": ids}, headers=member)
    assert bulk.status_code == 200, bulk.text
    assert sorted(bulk.json()["approved"]) == sorted(ids[:2])
    assert [(r["message_id"], r["status"]) for r in bulk.json()["refused"]] == [(str(rejected.id), "skipped")]
    neither = api.post(f"/api/campaigns/{world.campaign_id}/review/approve", json={}, headers=member)
    assert neither.status_code == 422
    drain(ctx, redis)
    assert sorted(r[0] for r in _bodies(smtp)) == ["lead0@example0.test", "lead2@example2.test", "lead3@example0.test"]
    final = messages(engine, world)
    assert sorted((r.position, r.status) for r in final) == [
        (1, "sent"),
        (1, "sent"),
        (1, "sent"),
        (1, "skipped"),
        *[(2, "awaiting_review")] * 4,
    ]
    assert len(smtp.messages) == 3  # step 2 waits for review like step 1 did


def test_first_n_reviews_the_first_messages_of_each_step_and_bulk_approval_sends_each_once(
    ctx: jobs.Context,
    redis: Redis,
    engine: sa.Engine,
    smtp: SmtpServer,
    api: TestClient,  # type: ignore[type-arg]
    signer: TokenSigner,
) -> None:
    world = create_world(
        engine,
        leads=3,
        smtp=(smtp.host, smtp.port),
        campaign_overrides={"review_mode": "first_n", "review_first_n": 2},
    )
    drain(ctx, redis)
    rows = messages(engine, world)
    assert sorted(r.status for r in rows) == ["awaiting_review", "awaiting_review", "sent"]
    assert len(smtp.messages) == 1  # the third message of the step went without review
    waiting = {str(r.id) for r in rows if r.status == "awaiting_review"}

    bulk = api.post(
        f"/api/campaigns/{world.campaign_id}/review/approve", json={"all": True}, headers=_headers(signer, world)
    )
    assert bulk.status_code == 200, bulk.text
    assert (set(bulk.json()["approved"]), bulk.json()["refused"]) == (waiting, [])
    drain(ctx, redis)
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [
        "lead0@example0.test",
        "lead1@example1.test",
        "lead2@example2.test",
    ]
    assert [(r.status, r.attempt) for r in messages(engine, world)] == [("sent", 1)] * 3
    again = api.post(
        f"/api/campaigns/{world.campaign_id}/review/approve", json={"all": True}, headers=_headers(signer, world)
    )
    assert again.json() == {"approved": [], "refused": []}


def test_a_review_deadline_skips_or_sends_as_the_campaign_says(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    review = {"review_mode": "all", "review_deadline_hours": 2}
    skip = create_world(engine, smtp=(smtp.host, smtp.port), campaign_overrides={**review})
    send = create_world(
        engine, smtp=(smtp.host, smtp.port), campaign_overrides={**review, "review_after_deadline": "send"}
    )
    drain(ctx, redis)
    assert smtp.messages == []
    [waiting] = messages(engine, skip)
    assert waiting.status == "awaiting_review"
    assert waiting.review_deadline_at is not None

    early = ctx.settings.model_copy(update={"clock_offset_seconds": ctx.settings.clock_offset_seconds + 3600})
    assert Ticker(early, ctx.engine, redis).expire_reviews() == 0  # an hour on: still waiting
    late = ctx.settings.model_copy(update={"clock_offset_seconds": ctx.settings.clock_offset_seconds + 3 * 3600})
    Ticker(late, ctx.engine, redis).tick()
    drain(ctx, redis)
    [skipped] = messages(engine, skip)
    assert (skipped.status, skipped.hold_reason, skipped.attempt) == ("skipped", "review_expired", 0)
    [sent] = messages(engine, send)
    assert (sent.status, sent.attempt, sent.reviewed_by) == ("sent", 1, None)
    assert sent.review_note == "approved at the review deadline"
    assert [m.rcpt_tos for m in smtp.messages] == [["lead0@example0.test"]]
    assert _enrollment(engine, skip.enrollment_ids[0]).status == "completed"  # the skip moved it on


def test_a_message_awaiting_review_is_never_sent_by_a_stray_job_and_a_reply_skips_it(
    ctx: jobs.Context,
    redis: Redis,
    engine: sa.Engine,
    smtp: SmtpServer,
    api: TestClient,  # type: ignore[type-arg]
    signer: TokenSigner,
) -> None:
    from services.campaign.inbound.repository import stop_enrollments

    world = create_world(engine, leads=2, smtp=(smtp.host, smtp.port), campaign_overrides={"review_mode": "all"})
    drain(ctx, redis)
    waiting, replied = (_by_lead(engine, world)[lead] for lead in world.lead_ids)
    assert jobs.process(ctx, waiting.id) == "awaiting_review"  # a repair or duplicate job does nothing
    assert _by_lead(engine, world)[waiting.lead_id].status == "awaiting_review"

    with system_session(engine) as s:
        stop_enrollments(s, org_id=world.org_id, lead_ids=[replied.lead_id], reason="replied", now=ctx.now())
    assert _by_lead(engine, world)[replied.lead_id].status == "skipped"
    late = api.post(f"/api/messages/{replied.id}/approve", json={}, headers=_headers(signer, world))
    assert late.status_code == 409, late.text
    drain(ctx, redis)
    assert smtp.messages == []


def test_a_model_written_message_waits_with_its_text_and_goes_out_as_approved_without_a_second_call(
    ctx: jobs.Context,
    redis: Redis,
    engine: sa.Engine,
    smtp: SmtpServer,
    providers: ProviderServer,
    api: TestClient,  # type: ignore[type-arg]
    signer: TokenSigner,
) -> None:
    box = SecretBox.from_settings(ctx.settings)
    world = create_world(
        engine, smtp=(smtp.host, smtp.port), box=box, openai_key="sk-test", campaign_overrides={"review_mode": "all"}
    )
    drain(ctx, redis)
    [waiting] = messages(engine, world)
    with system_session(engine) as s:
        [audit] = s.execute(sa.text("SELECT * FROM personalizations")).all()
    assert audit.source == "openai"
    assert (waiting.status, waiting.subject, waiting.body) == (
        "awaiting_review",
        audit.content["subject"],
        audit.content["body"],
    )
    assert smtp.messages == []
    r = api.post(f"/api/messages/{waiting.id}/approve", json={}, headers=_headers(signer, world))
    assert r.status_code == 200, r.text
    drain(ctx, redis)
    [mail] = smtp.messages
    assert mail.parsed()["Subject"] == audit.content["subject"]
    assert providers.count("chat") == 1  # the approved text went out; nothing was written again
