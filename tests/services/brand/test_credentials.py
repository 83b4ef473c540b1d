"""Provider credentials: one set per provider and organization, secrets write-only."""

from __future__ import annotations

from typing import Any

from tests.services.brand.conftest import Actor

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fedcba9876543210" * 2
OPENAI_KEY = "sk-test-0123456789abcdefghijklmnopqrstuvwxyzWXYZ"


def create_twilio(actor: Actor) -> dict[str, Any]:
    r = actor.post("/api/credentials", {"provider": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN})
    assert r.status_code == 201, r.text
    return dict(r.json())


def create_openai(actor: Actor) -> dict[str, Any]:
    r = actor.post("/api/credentials", {"provider": "openai", "api_key": OPENAI_KEY, "model": "gpt-4o-mini"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_twilio_credentials_show_only_set_and_last4(alice: Actor) -> None:
    created = create_twilio(alice)
    assert created["account_sid"] == ACCOUNT_SID
    assert created["auth_token"] == {"set": True, "last4": "3210"}
    assert created["api_key"] is None
    r = alice.get(f"/api/credentials/{created['id']}")
    assert r.status_code == 200
    assert AUTH_TOKEN not in r.text


def test_openai_credentials(alice: Actor) -> None:
    created = create_openai(alice)
    assert created["api_key"] == {"set": True, "last4": "WXYZ"}
    assert created["model"] == "gpt-4o-mini"
    assert created["auth_token"] is None


def test_one_set_per_provider(alice: Actor) -> None:
    create_twilio(alice)
    r = alice.post("/api/credentials", {"provider": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN})
    assert r.status_code == 409
    assert r.json()["code"] == "CredentialExists"
    create_openai(alice)
    listed = alice.get("/api/credentials").json()["items"]
    assert sorted(c["provider"] for c in listed) == ["openai", "twilio"]


def test_credentials_must_match_their_provider(alice: Actor) -> None:
    r = alice.post("/api/credentials", {"provider": "twilio", "api_key": OPENAI_KEY, "model": "gpt-4o"})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"account_sid", "auth_token", "api_key", "model"}
    r = alice.post("/api/credentials", {"provider": "twilio", "account_sid": "AC123", "auth_token": "short"})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"account_sid", "auth_token"}
    assert "short" not in r.text
    r = alice.post("/api/credentials", {"provider": "mailchimp"})
    assert r.status_code == 422


def test_update_replaces_the_secret_with_if_match(alice: Actor) -> None:
    created = create_twilio(alice)
    path = f"/api/credentials/{created['id']}"
    new_token = "0" * 28 + "beef"
    assert alice.patch(path, {"auth_token": new_token}).status_code == 428
    r = alice.patch(path, {"auth_token": new_token}, headers={"If-Match": '"v1"'})
    assert r.status_code == 200, r.text
    assert r.json()["auth_token"] == {"set": True, "last4": "beef"}
    assert alice.patch(path, {"auth_token": AUTH_TOKEN}, headers={"If-Match": '"v1"'}).status_code == 412
    r = alice.patch(path, {"auth_token": None}, headers={"If-Match": '"v2"'})
    assert r.status_code == 422


def test_delete_credentials(alice: Actor) -> None:
    created = create_openai(alice)
    assert alice.delete(f"/api/credentials/{created['id']}").status_code == 204
    assert alice.get(f"/api/credentials/{created['id']}").status_code == 404
