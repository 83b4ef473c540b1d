"""The suppression list: add, remove, list, CSV import and export, and lead statuses following it."""

from __future__ import annotations

import csv
import io

from libs.security import Role
from tests.services.campaign.leads.conftest import Actor


def upload_suppressions(actor: Actor, content: bytes, **fields: str) -> dict[str, object]:
    r = actor.post("/api/suppressions/import", files={"file": ("s.csv", content, "text/csv")}, data=fields)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_add_normalises_guesses_the_kind_and_is_idempotent(alice: Actor) -> None:
    first = alice.post("/api/suppressions", {"value": " Ann@Example.COM ", "channel": "email", "reason": "unsubscribe"})
    assert first.status_code == 201
    body = first.json()
    assert (body["kind"], body["value"], body["channel"]) == ("email", "ann@example.com", "email")
    again = alice.post("/api/suppressions", {"value": "ann@example.com", "channel": "email", "reason": "unsubscribe"})
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert alice.suppress("(212) 555-0100", channel="sms")["value"] == "+12125550100"
    assert alice.suppress("@Acme.com", channel="email")["kind"] == "domain"


def test_bad_entries_are_field_errors(alice: Actor) -> None:
    assert alice.post("/api/suppressions", {"value": "not a phone"}).status_code == 422
    r = alice.post("/api/suppressions", {"value": "a@example.com", "channel": "sms"})
    assert r.status_code == 422
    r = alice.post("/api/suppressions", {"value": "ab" * 32, "kind": "hash"})
    assert r.status_code == 422
    r = alice.post("/api/suppressions", {"value": "a@example.com", "reason": "erasure"})
    assert r.status_code == 422


def test_lead_status_follows_adding_and_removing(alice: Actor) -> None:
    lead = alice.create_lead(email="a@example.com", phone="+12125550100")
    entry = alice.suppress("+12125550100", channel="sms", reason="stop")
    assert alice.get(f"/api/leads/{lead['id']}").json()["status"] == "suppressed"
    assert alice.as_role(Role.MEMBER).delete(f"/api/suppressions/{entry['id']}").status_code == 403
    assert alice.delete(f"/api/suppressions/{entry['id']}").status_code == 204
    assert alice.get(f"/api/leads/{lead['id']}").json()["status"] == "active"
    assert alice.get(f"/api/suppressions/{entry['id']}").status_code == 404


def test_erasure_entries_cannot_be_removed(alice: Actor) -> None:
    lead = alice.create_lead(email="gone@example.com")
    alice.delete(f"/api/leads/{lead['id']}")
    entry = alice.get("/api/suppressions", params={"reason": "erasure"}).json()["items"][0]
    r = alice.delete(f"/api/suppressions/{entry['id']}")
    assert r.status_code == 409
    assert r.json()["code"] == "SuppressionLocked"


def test_list_filters_and_paginates(alice: Actor) -> None:
    for i in range(3):
        alice.suppress(f"u{i}@example.com", channel="email", reason="unsubscribe")
    alice.suppress("+12125550100", channel="sms", reason="stop")
    page = alice.get("/api/suppressions", params={"limit": 2}).json()
    assert len(page["items"]) == 2
    rest = alice.get("/api/suppressions", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 2
    assert rest["next_cursor"] is None
    assert [s["reason"] for s in alice.get("/api/suppressions", params={"channel": "sms"}).json()["items"]] == ["stop"]
    assert len(alice.get("/api/suppressions", params={"q": "u1@"}).json()["items"]) == 1
    assert len(alice.get("/api/suppressions", params={"kind": "email"}).json()["items"]) == 3


def test_csv_import_adds_valid_rows_and_reports_the_rest(alice: Actor) -> None:
    lead = alice.create_lead(email="x@blocked.com")
    content = (
        b"value,channel,reason,source\n"
        b"a@example.com,email,unsubscribe,old tool\n"
        b"@blocked.com,,,\n"
        b"+1 212 555 0100,sms,stop,\n"
        b"nonsense,,,\n"
        b"b@example.com,sms,,\n"
        b"a@example.com,email,unsubscribe,\n"
    )
    result = upload_suppressions(alice, content, channel="email")
    assert (result["added"], result["existing"], result["rejected"]) == (3, 1, 2)
    assert [p["row"] for p in result["problems"]] == [5, 6]  # type: ignore[attr-defined]
    assert alice.get(f"/api/leads/{lead['id']}").json()["status"] == "suppressed"
    r = alice.post("/api/suppressions/import", files={"file": ("s.csv", b"first_name\nAnn\n", "text/csv")})
    assert r.status_code == 422
    r = alice.post(
        "/api/suppressions/import",
        files={"file": ("s.csv", b"email\na@b.com\n", "text/csv")},
        data={"reason": "erasure"},
    )
    assert r.status_code == 422


def test_export_neutralises_formulas_and_round_trips(alice: Actor) -> None:
    alice.suppress("a@example.com", channel="email", source='=HYPERLINK("http://evil","x")')
    alice.suppress("+12125550100", channel="sms", source="+1+1")
    alice.suppress("@acme.com", channel="email", source="-2")
    alice.suppress("b@example.com", channel="all", source="@SUM(A1)")
    r = alice.get("/api/suppressions/export")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["value", "kind", "channel", "reason", "source", "created_at"]
    sources = {row[0]: row[4] for row in rows[1:]}
    assert sources == {
        "a@example.com": '\'=HYPERLINK("http://evil","x")',
        "'+12125550100": "'+1+1",
        "acme.com": "'-2",
        "b@example.com": "'@SUM(A1)",
    }
    stored = {s["value"]: s["source"] for s in alice.get("/api/suppressions").json()["items"]}
    assert stored["+12125550100"] == "+1+1"
