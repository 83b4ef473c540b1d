"""Sender pools: leads shared by capacity, a lead's steps from one sender (threaded), hand-off on a pause."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from redis import Redis

from libs.db.models.brand import Sender
from libs.db.session import system_session
from services.worker import jobs
from tests.services.campaign.campaigns import conftest as campaign_api
from tests.services.campaign.campaigns.test_forecast import _enroll, _seed_leads_on_many_domains
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import CONSENT, create_world
from tests.support.smtp import SmtpServer
from tests.support.tokens import TokenSigner
from tests.support.world import World

# the campaign API's fixtures, for the pool setting
client = campaign_api.client
campaign_settings = campaign_api.campaign_settings
brand_url = campaign_api.brand_url


@pytest.fixture
def api(client: TestClient, signer: TokenSigner, engine: sa.Engine) -> campaign_api.World:  # type: ignore[type-arg]
    org_a, org_b = campaign_api.seed_org(engine, "A"), campaign_api.seed_org(engine, "B")
    return campaign_api.World(
        a=campaign_api.Actor(client, signer, org_a),
        b=campaign_api.Actor(client, signer, org_b),
        brand_a=campaign_api.seed_brand(engine, org_a),
        brand_b=campaign_api.seed_brand(engine, org_b),
        db=engine,
    )


def add_senders(engine: sa.Engine, world: World, smtp: SmtpServer, limits: list[int]) -> list[uuid.UUID]:
    """Give the brand's first email sender the first limit and add one email sender per further limit."""
    with system_session(engine) as s:
        first = s.execute(
            sa.text("SELECT id FROM senders WHERE brand_id = :b AND kind = 'email'"), {"b": world.brand_id}
        ).scalar_one()
        s.execute(sa.text("UPDATE senders SET daily_limit = :n WHERE id = :id"), {"n": limits[0], "id": first})
        ids = [first]
        for i, limit in enumerate(limits[1:], start=2):
            sender = Sender(
                org_id=world.org_id,
                brand_id=world.brand_id,
                kind="email",
                from_name=f"Sam {i}",
                from_address=f"sam{i}@acme.example",
                smtp_host=smtp.host,
                smtp_port=smtp.port,
                smtp_security="none",
                daily_limit=limit,
                verified_at=CONSENT,
            )
            s.add(sender)
            s.flush()
            ids.append(sender.id)
    return ids


def kept(engine: sa.Engine, world: World) -> dict[uuid.UUID, uuid.UUID | None]:
    with system_session(engine) as s:
        rows = s.execute(
            sa.text("SELECT lead_id, email_sender_id FROM enrollments WHERE campaign_id = :c"), {"c": world.campaign_id}
        ).all()
    return {r.lead_id: r.email_sender_id for r in rows}


def address_of(engine: sa.Engine, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    with system_session(engine) as s:
        rows = s.execute(sa.text("SELECT id, from_address FROM senders WHERE id = ANY(:ids)"), {"ids": ids}).all()
    return {r.id: r.from_address for r in rows}


def test_three_senders_share_300_leads_by_their_capacity(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, leads=300, smtp=(smtp.host, smtp.port))
    ids = add_senders(engine, world, smtp, [50, 100, 150])
    drain(ctx, redis, rounds=30)
    assert sum(r.status == "sent" for r in messages(engine, world)) == 300
    shares = Counter(kept(engine, world).values())
    assert [shares[i] for i in ids] == [50, 100, 150]
    addresses = address_of(engine, ids)
    assert Counter(m.mail_from for m in smtp.messages) == {
        addresses[i]: n for i, n in zip(ids, [50, 100, 150], strict=True)
    }


def test_each_lead_keeps_its_first_sender_and_its_follow_ups_thread(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, channels=("email", "email", "email"), leads=30, smtp=(smtp.host, smtp.port))
    ids = add_senders(engine, world, smtp, [1000, 1000, 1000])
    drain(ctx, redis, rounds=30)
    assert len(smtp.messages) == 90
    by_lead: dict[str, list] = {}  # type: ignore[type-arg]
    for m in smtp.messages:
        by_lead.setdefault(m.rcpt_tos[0], []).append(m.parsed())
    assert len(by_lead) == 30
    assert len({mails[0]["From"] for mails in by_lead.values()}) == 3  # the pool is used, not one sender
    addresses = address_of(engine, ids)
    keep = kept(engine, world)
    assert len(set(keep.values())) == 3
    for mails in by_lead.values():
        assert len({m["From"].addresses[0].addr_spec for m in mails}) == 1
        first, second, third = mails
        assert first["In-Reply-To"] is None
        assert second["In-Reply-To"] == first["Message-ID"]
        assert third["References"].split() == [first["Message-ID"], second["Message-ID"]]
    assert {m.mail_from for m in smtp.messages} == set(addresses.values())


LEAVING = {
    "paused": "UPDATE senders SET paused_at = now() WHERE id = :id",
    "removed": "DELETE FROM senders WHERE id = :id",
    "left_out_of_the_pool": "UPDATE campaigns SET sender_pool = jsonb_build_object('email', (SELECT jsonb_agg(x.id)"
    " FROM senders x WHERE x.brand_id = campaigns.brand_id AND x.kind = 'email' AND x.id <> :id))",
}


@pytest.mark.parametrize("leaving", sorted(LEAVING))
def test_a_sender_paused_removed_or_left_out_hands_its_leads_to_the_others_and_no_step_goes_twice(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer, leaving: str
) -> None:
    world = create_world(
        engine, channels=("email", "email"), leads=30, smtp=(smtp.host, smtp.port), delay_minutes=24 * 60
    )
    ids = add_senders(engine, world, smtp, [1000, 1000, 1000])
    drain(ctx, redis, rounds=20)
    before = kept(engine, world)
    assert len(smtp.messages) == 30
    paused = ids[0]
    theirs = {lead for lead, sender in before.items() if sender == paused}
    assert theirs
    paused_address = address_of(engine, [paused])[paused]
    with system_session(engine) as s:
        s.execute(sa.text(LEAVING[leaving]), {"id": paused})
        s.execute(
            sa.text(
                "UPDATE enrollments SET next_due_at = now() - interval '1 minute'"
                " WHERE campaign_id = :c AND next_due_at IS NOT NULL"
            ),
            {"c": world.campaign_id},
        )
    drain(ctx, redis, rounds=20)
    after = kept(engine, world)
    assert paused not in after.values()
    assert all(after[lead] == before[lead] for lead in before if lead not in theirs)  # the others keep theirs
    assert all(after[lead] in ids[1:] for lead in theirs)
    rows = messages(engine, world)
    assert len(rows) == 60
    assert all(r.status == "sent" for r in rows)
    assert Counter((r.lead_id, r.position) for r in rows).most_common(1)[0][1] == 1
    assert len(smtp.messages) == 60
    assert (
        Counter((m.rcpt_tos[0], m.parsed()["Subject"], m.parsed()["In-Reply-To"]) for m in smtp.messages).most_common(
            1
        )[0][1]
        == 1
    )
    with system_session(engine) as s:
        changes = s.execute(
            sa.text("SELECT lead_id, data FROM message_events WHERE campaign_id = :c AND type = 'sender_changed'"),
            {"c": world.campaign_id},
        ).all()
    assert {r.lead_id for r in changes} == theirs  # on each handed lead's timeline, once
    assert len(changes) == len(theirs)
    assert all(r.data["from_sender_id"] == str(paused) for r in changes)
    assert all(r.data["to_sender_id"] == str(after[r.lead_id]) for r in changes)
    assert {r.data["kind"] for r in changes} == {"email"}
    assert all(m.mail_from != paused_address for m in smtp.messages[30:])


def test_a_campaign_sends_only_from_the_senders_its_pool_names(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    world = create_world(engine, leads=30, smtp=(smtp.host, smtp.port))
    ids = add_senders(engine, world, smtp, [1000, 1000, 1000])
    with system_session(engine) as s:
        s.execute(
            sa.text("UPDATE campaigns SET sender_pool = CAST(:pool AS jsonb) WHERE id = :c"),
            {"pool": json.dumps({"email": [str(ids[1]), str(ids[2])]}), "c": world.campaign_id},
        )
    drain(ctx, redis, rounds=20)
    shares = Counter(kept(engine, world).values())
    assert shares == {ids[1]: 15, ids[2]: 15}
    addresses = address_of(engine, ids)
    assert {m.mail_from for m in smtp.messages} == {addresses[ids[1]], addresses[ids[2]]}


def test_the_pool_setting_is_kept_checked_against_the_brands_senders_and_cloned(
    api: campaign_api.World,
) -> None:
    world = api
    with world.db.begin() as conn:
        email = conn.execute(
            sa.text("SELECT id FROM senders WHERE brand_id = :b AND kind = 'email'"), {"b": world.brand_a}
        ).scalar_one()
        other = conn.execute(
            sa.text("SELECT id FROM senders WHERE brand_id = :b AND kind = 'email'"), {"b": world.brand_b}
        ).scalar_one()
    created = world.a.create_campaign(world.brand_a, sender_pool={"email": [str(email)]})
    assert created["sender_pool"] == {"email": [str(email)]}
    assert world.a.create_campaign(world.brand_a)["sender_pool"] is None
    r = world.a.post(
        "/api/campaigns", {"brand_id": str(world.brand_a), "name": "x", "sender_pool": {"sms": [str(email)]}}
    )
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["sender_pool.sms"]
    r = world.a.patch(f"/api/campaigns/{created['id']}", {"sender_pool": {"email": [str(other)]}})
    assert r.status_code == 422  # another organization's sender
    assert [e["field"] for e in r.json()["errors"]] == ["sender_pool.email"]
    r = world.a.post(f"/api/campaigns/{created['id']}/clone", {})
    assert r.status_code == 201, r.text
    assert r.json()["sender_pool"] == {"email": [str(email)]}
    r = world.a.patch(f"/api/campaigns/{created['id']}", {"sender_pool": None})
    assert r.status_code == 200, r.text
    assert r.json()["sender_pool"] is None


def test_the_forecast_counts_the_senders_of_the_pool(api: campaign_api.World) -> None:
    _seed_leads_on_many_domains(api, 4000)
    with api.db.begin() as conn:
        for daily, paused in ((500, None), (500, None), (5000, datetime.now(UTC))):
            conn.execute(
                sa.text(
                    "INSERT INTO senders (id, org_id, brand_id, kind, from_address, hourly_limit, daily_limit,"
                    " verified_at, paused_at, created_at) VALUES (gen_random_uuid(), :org, :brand, 'email',"
                    " 'more@acme.example', 10000, :daily, now(), :paused, now())"
                ),
                {"org": api.a.org_id, "brand": api.brand_a, "daily": daily, "paused": paused},
            )
    c = api.a.create_campaign(api.brand_a, send_window={"weekdays": list(range(7)), "start": "00:00", "end": "24:00"})
    api.a.add_step(c["id"])
    _enroll(api.a, c["id"])
    [step] = api.a.get(f"/api/campaigns/{c['id']}/forecast", params={"start": "2026-12-03T00:00:00+00:00"}).json()[
        "steps"
    ]
    assert step["limit_detail"].startswith("3 email senders allow 3,000 a day")  # 2,000 + 500 + 500; the paused one not
    assert step["sends_per_day"] == [{"date": "2026-12-03", "sends": 3000}, {"date": "2026-12-04", "sends": 1000}]
