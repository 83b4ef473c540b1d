"""The inbox: conversations per lead across email and SMS, unread state, intent, assignment, paging."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
import sqlalchemy as sa

from libs.replies.intents import Intent as ReplyIntent
from libs.security import Role
from tests.services.campaign.conversations.conftest import Seeder, World, seed_lead

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.fixture
def seed(world: World) -> Seeder:
    return Seeder(world.db, world.a.org_id, world.brand_a)


def reply_mail(text: str) -> bytes:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "ann@example.com", "jane@acme.example", "Re: Hello"
    mail.set_content(text)
    return mail.as_bytes()


def test_a_thread_merges_email_and_sms_out_and_in_newest_first(world: World, seed: Seeder) -> None:
    lead = seed_lead(world.db, world.a.org_id, phone="+15005550006", first_name="Ann")
    email_campaign, sms_campaign = seed.campaign("email"), seed.campaign("sms")
    m1 = seed.sent(lead, email_campaign, T0, subject="Hello Ann", body="First touch")
    seed.sent(lead, seed.campaign("sms"), None)  # queued: not part of the conversation yet
    reply = seed.inbound(
        lead,
        T0 + timedelta(hours=1),
        source="email",
        payload={"kind": "reply", "subject": "Re: Hello Ann"},
        raw=reply_mail("Sounds good, call me."),
        message_id=m1,
    )
    seed.inbound(lead, T0 + timedelta(hours=3), source="email", outcome="hard_bounce", payload={"kind": "hard_bounce"})
    m2 = seed.sent(lead, sms_campaign, T0 + timedelta(hours=2), body="Texting you too")
    text = seed.inbound(lead, T0 + timedelta(hours=4), payload={"params": {"Body": "STOP"}}, outcome="opt_out")

    page = world.a.get(f"/api/conversations/{lead}").json()
    items = page["items"]
    assert [(i["id"], i["direction"], i["channel"]) for i in items] == [
        (str(text), "in", "sms"),
        (str(m2), "out", "sms"),
        (str(reply), "in", "email"),
        (str(m1), "out", "email"),
    ]
    assert items[0]["body"] == "STOP"
    assert items[0]["intent"] == "opt_out"
    assert items[2]["body"] == "Sounds good, call me."
    assert items[2]["subject"] == "Re: Hello Ann"
    assert items[2]["campaign_id"] == str(email_campaign[0])
    assert items[2]["message_id"] == str(m1)
    assert items[2]["intent"] == "reply"
    assert items[3]["subject"] == "Hello Ann"
    assert items[3]["body"] == "First touch"
    assert items[3]["intent"] is None
    assert page["next_cursor"] is None

    first = world.a.get(f"/api/conversations/{lead}", params={"limit": 3}).json()
    assert [i["id"] for i in first["items"]] == [str(text), str(m2), str(reply)]
    rest = world.a.get(f"/api/conversations/{lead}", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [i["id"] for i in rest["items"]] == [str(m1)]
    assert rest["next_cursor"] is None


def test_the_list_is_ordered_by_last_activity_and_pages_by_cursor(world: World, seed: Seeder) -> None:
    campaign = seed.campaign()
    leads = [seed_lead(world.db, world.a.org_id) for _ in range(4)]
    seed.sent(leads[0], campaign, T0 + timedelta(hours=5))
    seed.sent(leads[1], campaign, T0)
    seed.inbound(leads[1], T0 + timedelta(hours=9))  # an inbound text is activity too
    seed.sent(leads[2], campaign, T0 + timedelta(hours=1))
    seed.sent(leads[3], campaign, None)  # nothing sent, nothing received: no conversation
    order = [str(leads[1]), str(leads[0]), str(leads[2])]

    page = world.a.get("/api/conversations").json()
    assert [c["lead_id"] for c in page["items"]] == order
    assert page["items"][0]["last_activity_at"].startswith("2026-11-02T18:00")
    assert page["items"][0]["last_inbound_at"].startswith("2026-11-02T18:00")
    assert page["items"][1]["last_inbound_at"] is None
    assert page["items"][1]["unread"] is False
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        body = world.a.get("/api/conversations", params=params).json()
        seen += [c["lead_id"] for c in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == order


def test_unread_until_read_and_unread_again_when_the_lead_writes(world: World, seed: Seeder) -> None:
    lead = seed_lead(world.db, world.a.org_id, phone="+15005550006")
    quiet = seed_lead(world.db, world.a.org_id)
    campaign = seed.campaign("sms")
    seed.sent(lead, campaign, T0)
    seed.sent(quiet, campaign, T0)
    seed.inbound(lead, T0 + timedelta(minutes=5), payload={"params": {"Body": "Who is this?"}})

    def unread() -> list[str]:
        return [c["lead_id"] for c in world.a.get("/api/conversations", params={"unread": "true"}).json()["items"]]

    assert unread() == [str(lead)]
    assert [c["lead_id"] for c in world.a.get("/api/conversations", params={"unread": "false"}).json()["items"]] == [
        str(quiet)
    ]
    r = world.a.post(f"/api/conversations/{lead}/read")
    assert r.status_code == 200, r.text
    assert r.json()["unread"] is False
    assert r.json()["read_at"] is not None
    assert unread() == []
    seed.inbound(lead, datetime.now(UTC) + timedelta(minutes=1), payload={"params": {"Body": "Hello?"}})
    assert unread() == [str(lead)]


def test_intent_comes_from_the_latest_text_or_email_and_filters(world: World, seed: Seeder) -> None:
    campaign = seed.campaign("sms")
    replied, stopped, bounced = (seed_lead(world.db, world.a.org_id) for _ in range(3))
    for lead in (replied, stopped, bounced):
        seed.sent(lead, campaign, T0)
    seed.inbound(stopped, T0 + timedelta(minutes=1), outcome="reply")
    seed.inbound(stopped, T0 + timedelta(minutes=2), outcome="opt_out")
    seed.inbound(replied, T0 + timedelta(minutes=3), outcome="reply")
    seed.inbound(bounced, T0 + timedelta(minutes=4), source="email", outcome="hard_bounce", payload={"kind": "x"})

    by_lead = {c["lead_id"]: c for c in world.a.get("/api/conversations").json()["items"]}
    assert by_lead[str(stopped)]["intent"] == "opt_out"
    assert by_lead[str(replied)]["intent"] == "reply"
    assert by_lead[str(bounced)]["intent"] is None  # a bounce is not the lead writing
    assert by_lead[str(bounced)]["unread"] is False
    got = world.a.get("/api/conversations", params={"intent": "opt_out"}).json()["items"]
    assert [c["lead_id"] for c in got] == [str(stopped)]
    r = world.a.get("/api/conversations", params={"intent": "maybe"})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["intent"]


def test_a_reply_classification_names_the_intent_before_the_events_outcome(world: World, seed: Seeder) -> None:
    campaign = seed.campaign("sms")
    lead, plain = seed_lead(world.db, world.a.org_id), seed_lead(world.db, world.a.org_id)
    seed.sent(lead, campaign, T0)
    seed.sent(plain, campaign, T0)
    seed.inbound(plain, T0 + timedelta(minutes=1), outcome="reply")
    older = seed.inbound(lead, T0 + timedelta(minutes=2), outcome="reply")
    seed.classify(older, "not_interested")
    latest = seed.inbound(lead, T0 + timedelta(minutes=3), outcome="reply", payload={"params": {"Body": "Tuesday?"}})
    seed.classify(latest, "meeting_request")

    got = world.a.get("/api/conversations", params={"intent": "meeting_request"}).json()["items"]
    assert [c["lead_id"] for c in got] == [str(lead)]
    assert got[0]["intent"] == "meeting_request"
    assert world.a.get("/api/conversations", params={"intent": "not_interested"}).json()["items"] == []
    plain_row = world.a.get("/api/conversations", params={"intent": "reply"}).json()["items"]
    assert [c["lead_id"] for c in plain_row] == [str(plain)]
    thread = world.a.get(f"/api/conversations/{lead}").json()["items"]
    assert [i["intent"] for i in thread] == ["meeting_request", "not_interested", None]


def test_every_reply_intent_filters(world: World, seed: Seeder) -> None:
    lead = seed_lead(world.db, world.a.org_id)
    seed.sent(lead, seed.campaign("sms"), T0)
    event = seed.inbound(lead, T0 + timedelta(minutes=1), outcome="reply")
    for intent in ReplyIntent:
        seed.classify(event, intent.value)
        got = world.a.get("/api/conversations", params={"intent": intent.value})
        assert got.status_code == 200, got.text
        assert [c["intent"] for c in got.json()["items"]] == [intent.value]


def test_the_campaign_filter_keeps_leads_the_campaign_wrote_to(world: World, seed: Seeder) -> None:
    one, other = seed.campaign(), seed.campaign()
    a, b = seed_lead(world.db, world.a.org_id), seed_lead(world.db, world.a.org_id)
    seed.sent(a, one, T0)
    seed.sent(b, other, T0 + timedelta(hours=1))
    got = world.a.get("/api/conversations", params={"campaign_id": str(one[0])}).json()["items"]
    assert [c["lead_id"] for c in got] == [str(a)]
    assert world.a.get("/api/conversations", params={"campaign_id": str(uuid.uuid4())}).json()["items"] == []


def test_assignment_to_a_member_filters_and_a_stranger_is_refused_naming_the_field(world: World, seed: Seeder) -> None:
    campaign = seed.campaign()
    lead, other = seed_lead(world.db, world.a.org_id), seed_lead(world.db, world.a.org_id)
    seed.sent(lead, campaign, T0)
    seed.sent(other, campaign, T0 + timedelta(hours=1))
    member = seed.member()
    outsider = Seeder(world.db, world.b.org_id, world.brand_b).member()

    r = world.a.put(f"/api/conversations/{lead}/assignment", {"member_id": str(member)})
    assert r.status_code == 200, r.text
    assert r.json()["assigned_member_id"] == str(member)
    got = world.a.get("/api/conversations", params={"assigned_to": str(member)}).json()["items"]
    assert [c["lead_id"] for c in got] == [str(lead)]

    for stranger in (outsider, uuid.uuid4()):
        r = world.a.put(f"/api/conversations/{lead}/assignment", {"member_id": str(stranger)})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in r.json()["errors"]] == ["member_id"]
    assert world.a.get(f"/api/conversations/{lead}").status_code == 200
    got = world.a.get("/api/conversations", params={"assigned_to": str(member)}).json()["items"]
    assert [c["assigned_member_id"] for c in got] == [str(member)]  # the refused ones changed nothing
    r = world.a.put(f"/api/conversations/{lead}/assignment", {"member_id": None})
    assert r.status_code == 200
    assert r.json()["assigned_member_id"] is None
    assert world.a.get("/api/conversations", params={"assigned_to": str(member)}).json()["items"] == []
    r = world.a.put(f"/api/conversations/{lead}/assignment", {"member": str(member)})
    assert r.status_code in (400, 422)
    assert "member" in r.text


def test_an_assignee_who_leaves_the_organization_assigns_the_conversation_to_nobody(world: World, seed: Seeder) -> None:
    lead = seed_lead(world.db, world.a.org_id)
    seed.sent(lead, seed.campaign(), T0)
    member = seed.member()
    assert world.a.put(f"/api/conversations/{lead}/assignment", {"member_id": str(member)}).status_code == 200
    with world.db.begin() as conn:
        conn.execute(sa.text("DELETE FROM memberships WHERE user_id = :u"), {"u": member})
    assert world.a.get("/api/conversations").json()["items"][0]["assigned_member_id"] is None
    assert world.a.get("/api/conversations", params={"assigned_to": str(member)}).json()["items"] == []


def test_viewers_read_the_inbox_but_only_members_change_it(world: World, seed: Seeder) -> None:
    lead = seed_lead(world.db, world.a.org_id)
    seed.sent(lead, seed.campaign(), T0)
    viewer = world.a.as_role(Role.VIEWER)
    assert viewer.get("/api/conversations").status_code == 200
    assert viewer.get(f"/api/conversations/{lead}").status_code == 200
    assert viewer.post(f"/api/conversations/{lead}/read").status_code == 403
    assert viewer.put(f"/api/conversations/{lead}/assignment", {"member_id": None}).status_code == 403
    assert world.a.as_role(Role.MEMBER).post(f"/api/conversations/{lead}/read").status_code == 200


def test_bad_cursor_and_unknown_lead_are_problems_naming_what_is_wrong(world: World) -> None:
    r = world.a.get("/api/conversations", params={"cursor": "not-ours!"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "cursor"
    missing = uuid.uuid4()
    assert world.a.get(f"/api/conversations/{missing}").status_code == 404
    assert world.a.post(f"/api/conversations/{missing}/read").status_code == 404
    assert world.a.put(f"/api/conversations/{missing}/assignment", {"member_id": None}).status_code == 404


def test_api_keys_read_the_inbox_with_messages_read_and_change_it_with_leads_write(world: World, seed: Seeder) -> None:
    lead = seed_lead(world.db, world.a.org_id)
    seed.sent(lead, seed.campaign(), T0)

    def call(scopes: list[str], method: str, path: str) -> int:
        headers = world.a.signer.headers(org_id=world.a.org_id, role=Role.MEMBER, scopes=scopes)
        return int(world.a.client.request(method, path, headers=headers).status_code)

    assert call(["messages:read"], "GET", "/api/conversations") == 200
    assert call(["messages:read"], "GET", f"/api/conversations/{lead}") == 200
    assert call(["leads:read"], "GET", "/api/conversations") == 403
    assert call(["messages:read"], "POST", f"/api/conversations/{lead}/read") == 403
    assert call(["leads:write"], "POST", f"/api/conversations/{lead}/read") == 200
