"""What the sender API promises: its 422s are documented and name the field; ``verified`` is readable everywhere."""

from __future__ import annotations

from typing import Any

from libs.openapi import service_document
from services.brand.app import create_app
from tests.services.brand.conftest import Actor
from tests.support.smtp import SmtpServer

PASSWORD = "correct-horse-battery-staple"


def _problem(r: Any) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    return body


def test_a_voice_sender_without_voice_or_audio_is_a_422_naming_tts_voice(alice: Actor) -> None:
    brand = alice.create_brand()
    r = alice.post(f"/api/brands/{brand['id']}/senders", {"kind": "voice", "phone_number": "+14155552671"})
    body = _problem(r)
    assert body["code"] == "Invalid"
    assert [e["field"] for e in body["errors"]] == ["tts_voice"]
    assert "audio_url" in body["errors"][0]["message"]
    created = alice.post(
        f"/api/brands/{brand['id']}/senders", {"kind": "voice", "phone_number": "+14155552671", "tts_voice": "alice"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["verified"] is False


def test_the_openapi_document_describes_the_sender_rules() -> None:
    document = service_document(create_app())
    paths = document["paths"]
    create = paths["/api/brands/{brand_id}/senders"]["post"]
    update = paths["/api/brands/{brand_id}/senders/{sender_id}"]["patch"]
    for op in (create, update):
        answer = op["responses"]["422"]
        assert "application/problem+json" in answer["content"]
        assert "tts_voice" in answer["description"]
        assert "audio_url" in answer["description"]
    schemas = document["components"]["schemas"]
    body = next(s for name, s in schemas.items() if name.endswith("SenderCreate"))
    assert "audio_url" in body["properties"]["tts_voice"]["description"]
    read = next(s for name, s in schemas.items() if name.endswith("SenderRead"))
    assert read["properties"]["verified"]["type"] == "boolean"
    assert "verified" in read["required"]


def test_verified_is_in_every_sender_answer(alice: Actor) -> None:
    brand = alice.create_brand()
    base = f"/api/brands/{brand['id']}/senders"
    with SmtpServer(credentials={"jane@acme.example": PASSWORD}) as smtp:
        sender = alice.create_email_sender(brand["id"], smtp, smtp_security="none")
        assert sender["verified"] is False
        verified = alice.post(f"{base}/{sender['id']}/verify")
        assert verified.status_code == 200, verified.text
        assert verified.json()["verified"] is True
        assert verified.json()["verified_at"] is not None
    assert alice.get(f"{base}/{sender['id']}").json()["verified"] is True
    [listed] = alice.get(base).json()["items"]
    assert listed["verified"] is True
    etag = alice.get(f"{base}/{sender['id']}").headers["etag"]
    changed = alice.patch(f"{base}/{sender['id']}", {"smtp_host": "smtp.other.example"}, headers={"If-Match": etag})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["verified"], changed.json()["verified_at"]) == (False, None)
