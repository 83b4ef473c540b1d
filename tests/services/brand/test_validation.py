"""Bad input is a 422 problem naming every field at fault, never a 500."""

from __future__ import annotations

from typing import Any

from tests.services.brand.conftest import Actor


def _fields(r: Any) -> set[str]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "Invalid"
    return {e["field"] for e in r.json()["errors"]}


def test_every_bad_brand_field_is_listed_at_once(alice: Actor) -> None:
    r = alice.post(
        "/api/brands",
        {
            "name": "",
            "website": "javascript:alert(1)",
            "timezone": "Mars/Olympus_Mons",
            "description": "x" * 2001,
            "sms_signoff": "line one\nline two",
            "proof_points": ["ok"] * 21,
            "forbidden_claims": ["y" * 301],
        },
    )
    fields = _fields(r)
    for name in ("name", "website", "timezone", "description", "sms_signoff", "proof_points", "forbidden_claims"):
        assert any(f.startswith(name) for f in fields), (name, fields)


BAD_BRAND_VALUES: list[tuple[str, Any]] = [
    ("timezone", "Not/AZone"),
    ("timezone", "../../etc/passwd"),
    ("timezone", "America/New York"),
    ("website", "ftp://acme.example"),
    ("website", "https://user:pw@acme.example"),
    ("website", "https://"),
    ("name", "Acme\r\nBcc: victim@example.test"),
    ("name", "n" * 201),
    ("postal_address", "a" * 501),
    ("postal_address", "1 Main St\x00"),
    ("opt_out_sms", "s" * 301),
    ("proof_points", "not a list"),
]


def test_bad_brand_values(alice: Actor) -> None:
    for field, value in BAD_BRAND_VALUES:
        fields = _fields(alice.post("/api/brands", {"name": "Ok", field: value}))
        assert any(f.startswith(field) for f in fields), (field, value, fields)


def test_good_values_are_normalised(alice: Actor) -> None:
    brand = alice.create_brand(timezone="Europe/Paris", name="  Spaced  ", postal_address="1 Main St\r\nSpringfield")
    assert brand["timezone"] == "Europe/Paris"
    assert brand["name"] == "Spaced"
    assert brand["postal_address"] == "1 Main St\nSpringfield"


BAD_EMAIL_SENDER_VALUES: list[tuple[str, Any]] = [
    ("from_address", "not-an-address"),
    ("from_address", "jane@"),
    ("from_address", "jane@acme..example"),
    ("reply_to", "a b@acme.example"),
    ("from_name", "Jane\r\nBcc: x@example.test"),
    ("smtp_host", "smtp host.example"),
    ("smtp_host", "-bad-.example"),
    ("smtp_port", 0),
    ("smtp_port", 70000),
    ("smtp_security", "ssl3"),
    ("smtp_password", "p" * 513),
    ("hourly_limit", 0),
    ("hourly_limit", 10**9),
]


def test_bad_email_sender_values(alice: Actor) -> None:
    brand = alice.create_brand()
    for field, value in BAD_EMAIL_SENDER_VALUES:
        body = {
            "kind": "email",
            "from_address": "jane@acme.example",
            "smtp_host": "smtp.acme.example",
            "smtp_username": "jane",
            "smtp_password": "pw-123456789",
            field: value,
        }
        assert field in _fields(alice.post(f"/api/brands/{brand['id']}/senders", body)), (field, value)


BAD_SMS_SENDER_VALUES: list[tuple[str, Any]] = [
    ("phone_number", "555-1234"),
    ("phone_number", "+1 555 0000 000"),
    ("phone_number", "+99912345678"),
    ("phone_number", "call me"),
    ("messaging_service_sid", "MG123"),
    ("daily_limit", -5),
]
BAD_VOICE_SENDER_VALUES: list[tuple[str, Any]] = [
    ("audio_url", "http://cdn.acme.example/vm.mp3"),
    ("audio_url", "not a url"),
    ("tts_voice", "Polly Joanna!"),
]


def test_bad_sms_and_voice_sender_values(alice: Actor) -> None:
    brand = alice.create_brand()
    path = f"/api/brands/{brand['id']}/senders"
    for field, value in BAD_SMS_SENDER_VALUES:
        body = {"kind": "sms", "phone_number": "+14155552671", field: value}
        assert field in _fields(alice.post(path, body)), (field, value)
    for field, value in BAD_VOICE_SENDER_VALUES:
        body = {"kind": "voice", "phone_number": "+14155552671", "tts_voice": "Polly.Joanna", field: value}
        assert field in _fields(alice.post(path, body)), (field, value)


def test_many_bad_sender_fields_are_listed_together(alice: Actor) -> None:
    brand = alice.create_brand()
    r = alice.post(
        f"/api/brands/{brand['id']}/senders",
        {"kind": "email", "from_address": "nope", "reply_to": "nope", "smtp_port": -1, "smtp_host": "a b"},
    )
    assert _fields(r) >= {"from_address", "reply_to", "smtp_port", "smtp_host"}


def test_oversized_body_is_a_413(alice: Actor) -> None:
    r = alice.post("/api/brands", {"name": "x", "description": "y" * 2_000_000})
    assert r.status_code == 413


def test_bad_json_and_bad_ids_are_4xx(alice: Actor) -> None:
    r = alice.client.post("/api/brands", content=b"{nope", headers=alice.headers({"Content-Type": "application/json"}))
    assert r.status_code == 400
    assert alice.get("/api/brands/not-a-uuid").status_code == 404
